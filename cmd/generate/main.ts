// `npm run generate`: writes the TypeScript types and the CRDs from schemas/. The drift test
// (test/integration/generated.test.ts) calls renderGenerated() and compares with the committed files.
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { renderGenerated } from '../../pkg/api/generated-files.js';

const files = await renderGenerated();
for (const [relative, content] of Object.entries(files)) {
  const target = path.join(PACKAGE_ROOT, relative);
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, content);
  console.log(`wrote ${relative}`);
}

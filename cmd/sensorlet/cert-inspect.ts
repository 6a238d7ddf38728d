// `sensorlet cert inspect FILE [--password-env VAR] [--ca-file FILE]`: what a certificate says about
// itself and whether it would be accepted. Exit 1 when it is not usable.
import { inspectCertificateFile } from '../../pkg/pki/inspect.js';

export async function inspectCommand(file: string, options: { passwordEnv?: string; caFile?: string; keyFile?: string }): Promise<number> {
  if (options.passwordEnv && process.env[options.passwordEnv] === undefined) {
    console.error(`error: --password-env ${options.passwordEnv}: that environment variable is not set`);
    return 1;
  }
  const result = await inspectCertificateFile(file, {
    password: options.passwordEnv ? process.env[options.passwordEnv] : undefined,
    caFile: options.caFile,
    keyFile: options.keyFile,
  });
  for (const line of result.lines) console.log(line);
  return result.ok ? 0 : 1;
}

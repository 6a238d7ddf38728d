// Topic templates. Values come from names, the device id and certificate SANs; a value that could
// change the topic's structure (a level separator, a wildcard, NUL) is refused, never escaped.
import { SensorletError } from '../api/errors.js';

export const TOPIC_VARIABLES = ['tenant', 'device', 'sensor', 'namespace'] as const;
export type TopicVariables = Record<(typeof TOPIC_VARIABLES)[number], string>;

const FORBIDDEN = /[+#/\u0000]/;
const VARIABLE = /\{([^}]*)\}/g;

/** Checks a template: known variables only, no wildcards. Returns problems as messages. */
export function topicTemplateProblems(template: string): string[] {
  const problems: string[] = [];
  for (const match of template.matchAll(VARIABLE)) {
    if (!(TOPIC_VARIABLES as readonly string[]).includes(match[1])) {
      problems.push(`unknown variable {${match[1]}} in topic template; use ${TOPIC_VARIABLES.map((v) => `{${v}}`).join(', ')}`);
    }
  }
  const literal = template.replace(VARIABLE, '');
  if (/[+#\u0000]/.test(literal)) problems.push('a publish topic must not contain the wildcards + or #, or NUL');
  return problems;
}

export function renderTopic(template: string, variables: TopicVariables): string {
  return template.replace(VARIABLE, (_match, name: keyof TopicVariables) => {
    const value = variables[name];
    if (FORBIDDEN.test(value)) {
      throw new SensorletError('TopicInjection', `{${name}} is ${JSON.stringify(value)}, which contains +, #, / or NUL and would change the topic's structure`);
    }
    return value;
  });
}

// Topic templates. Values come from names, the device id and certificate SANs; a value that could
// change the topic's structure (a level separator, a wildcard, NUL) is refused, never escaped.
import { SensorletError } from '../api/errors.js';

export const TOPIC_VARIABLES = ['tenant', 'device', 'sensor', 'namespace'] as const;
export type TopicVariables = Record<(typeof TOPIC_VARIABLES)[number], string>;

const FORBIDDEN = /[+#/\u0000]/;
const VARIABLE = /\{([^{}]*)\}/g;

/** Problems in an MQTT topic template; an empty list when the template is safe to fill in. */
export function topicTemplateErrors(template: string): string[] {
  const problems: string[] = [];
  const allowed = TOPIC_VARIABLES.map((name) => `{${name}}`).join(', ');
  for (const match of template.matchAll(/\{([^{}]*)\}/g)) {
    if (!(TOPIC_VARIABLES as readonly string[]).includes(match[1])) problems.push(`unknown variable {${match[1]}} in topic ${JSON.stringify(template)}: use ${allowed}`);
  }
  const literal = template.replace(/\{[^{}]*\}/g, '');
  if (/[{}]/.test(literal)) problems.push(`unbalanced brace in topic ${JSON.stringify(template)}: variables are written {tenant}`);
  for (const wildcard of ['+', '#']) {
    if (literal.includes(wildcard)) {
      problems.push(`topic ${JSON.stringify(template)} must not contain the MQTT wildcard "${wildcard}": a reading is published to one exact topic`);
    }
  }
  if (literal.includes('\0')) problems.push(`topic ${JSON.stringify(template)} must not contain a NUL character`);
  if (template.startsWith('$')) problems.push(`topic ${JSON.stringify(template)} must not start with "$": such topics are reserved for the broker`);
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

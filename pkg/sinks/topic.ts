// Topic templates. Values come from names, the device id and certificate SANs; a value that could
// change the topic's structure (a level separator, a wildcard, NUL) is refused, never escaped
// (template.ts renders; this module says what is safe in an MQTT topic).
import { SensorletError } from '../api/errors.js';
import { renderTemplate, TEMPLATE_VARIABLE, type TemplateRules } from './template.js';

export const TOPIC_VARIABLES = ['tenant', 'device', 'sensor', 'namespace'] as const;
export type TopicVariables = Record<(typeof TOPIC_VARIABLES)[number], string>;

const ALLOWED = TOPIC_VARIABLES.map((name) => `{${name}}`).join(', ');

const TOPIC_RULES: TemplateRules = {
  forbidden: /[+#/\u0000]/,
  refuse: (name, value) =>
    value === undefined
      ? new SensorletError('InvalidSpec', `unknown variable {${name}} in a topic: use ${ALLOWED}`)
      : new SensorletError('TopicInjection', `{${name}} is ${JSON.stringify(value)}, which contains +, #, / or NUL and would change the topic's structure`),
};

/** Problems in an MQTT topic template; an empty list when the template is safe to fill in. */
export function topicTemplateErrors(template: string): string[] {
  const problems: string[] = [];
  for (const match of template.matchAll(TEMPLATE_VARIABLE)) {
    if (!(TOPIC_VARIABLES as readonly string[]).includes(match[1])) problems.push(`unknown variable {${match[1]}} in topic ${JSON.stringify(template)}: use ${ALLOWED}`);
  }
  const literal = template.replace(TEMPLATE_VARIABLE, '');
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
  return renderTemplate(template, variables, TOPIC_RULES);
}

/**
 * Problems in a command topic template (mqtt.commands.topic): {actuator}, {tenant} and {device}
 * must each be one whole level. Each connection subscribes with its own tenant filled in, so a
 * command reaches only the connection of the tenant it was published for (and the broker's ACL on
 * the tenant level says who may publish it); without {tenant} every tenant's connection would
 * receive every tenant's commands, and without {device} every agent would.
 */
export function commandTopicErrors(template: string): string[] {
  const parts = template.split('{actuator}');
  if (parts.length !== 2) return [`command topic ${JSON.stringify(template)} must contain {actuator} exactly once`];
  const [before, after] = parts;
  const levels = template.split('/');
  for (const variable of ['{actuator}', '{tenant}', '{device}']) {
    if (!levels.includes(variable)) {
      const missing = !template.includes(variable);
      return [
        missing
          ? `command topic ${JSON.stringify(template)} must contain ${variable}: each tenant's connection (and each device) must listen on its own topics`
          : `${variable} must be a whole level of command topic ${JSON.stringify(template)} (between slashes)`,
      ];
    }
  }
  return topicTemplateErrors(`${before}x${after}`).map((problem) => problem.replace(/\{sensor\}, /, ''));
}

/**
 * The subscription filter of a command topic template ({actuator} as `+`) and how to read the
 * actuator's name back out of a topic a message arrived on (undefined: not a command topic).
 */
export function commandTopic(template: string, variables: Omit<TopicVariables, 'sensor'>): { filter: string; actuatorOf(topic: string): string | undefined } {
  const [before, after] = template.split('{actuator}');
  const prefix = renderTopic(before, { ...variables, sensor: '' });
  const suffix = renderTopic(after, { ...variables, sensor: '' });
  return {
    filter: `${prefix}+${suffix}`,
    actuatorOf(topic) {
      if (topic.length <= prefix.length + suffix.length || !topic.startsWith(prefix) || !topic.endsWith(suffix)) return undefined;
      const name = topic.slice(prefix.length, topic.length - suffix.length);
      return name.includes('/') ? undefined : name;
    },
  };
}

// The one renderer for the sinks' name templates: MQTT topics (topic.ts) and CoAP Uri-Paths
// (coap/config.ts). Values come from names, the device id and certificate SANs; a value that could
// change the structure of what it is put into (a separator, a wildcard, a query) is refused, never
// escaped. Which characters those are, and the error that reports a refusal, belong to each use.

/** `{name}`; each use's validation checks the names (and its own literal characters) beforehand. */
export const TEMPLATE_VARIABLE = /\{([^{}]*)\}/g;

export interface TemplateRules {
  /** Characters a value must not contain (a regular expression without the g flag). */
  forbidden: RegExp;
  /** Refuse an empty value too (a CoAP path segment that would silently vanish). */
  requireValue?: boolean;
  /** The error thrown for a value that is refused; `undefined` when the variable has no value. */
  refuse(name: string, value: string | undefined): Error;
}

export function renderTemplate(template: string, variables: Readonly<Record<string, string | undefined>>, rules: TemplateRules): string {
  return template.replace(TEMPLATE_VARIABLE, (_match, name: string) => {
    // A name that is not a variable is refused, not rendered as "undefined" or left in braces.
    const value = Object.hasOwn(variables, name) ? variables[name] : undefined;
    if (value === undefined || (rules.requireValue && value === '')) throw rules.refuse(name, value);
    if (rules.forbidden.test(value)) throw rules.refuse(name, value);
    return value;
  });
}

/**
 * Environment for the programs pgharbor runs on an operator's behalf (hook
 * scripts, command notifiers): pgharbor's own environment minus every
 * variable that the config names as a secret source (`{ from_env: VAR }`)
 * and minus libpq's PGPASSWORD, so a script never receives a database
 * password or a webhook key it was not meant to have.
 */
export function childEnv(config: unknown, env: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  const secretVars = new Set<string>(['PGPASSWORD']);
  collectFromEnv(config, secretVars);
  return Object.fromEntries(Object.entries(env).filter(([name]) => !secretVars.has(name)));
}

function collectFromEnv(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) {
    for (const item of value) collectFromEnv(item, into);
  } else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === 'from_env' && typeof item === 'string') into.add(item);
      else collectFromEnv(item, into);
    }
  }
}

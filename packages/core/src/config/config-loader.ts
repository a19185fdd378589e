import path from 'node:path';
import { ConfigError, errorMessage } from '../errors.js';

/** Where cosmiconfig looks, in order, from the working directory upwards. */
export const configSearchPlaces = [
  'pgharbor.config.yaml',
  'pgharbor.config.yml',
  'pgharbor.config.json',
  'pgharbor.config.js',
  'pgharbor.config.cjs',
  'pgharbor.config.mjs',
  'pgharbor.config.ts',
  '.pgharborrc',
  '.pgharborrc.yaml',
  '.pgharborrc.yml',
  '.pgharborrc.json',
  '.pgharborrc.js',
  '.pgharborrc.cjs',
  '.pgharborrc.mjs',
];

export interface RawConfig {
  raw: unknown;
  filepath: string;
}

/**
 * Find and read the config file: `--config FILE` when given, otherwise the
 * first of `configSearchPlaces` from `cwd` upwards, then
 * /etc/pgharbor/pgharbor.config.yaml (where a system install keeps it).
 */
export async function loadRawConfig(configFile: string | undefined, cwd: string = process.cwd()): Promise<RawConfig> {
  // Imported here, not at the top: the WAL hot path never loads it.
  const { cosmiconfig } = await import('cosmiconfig');
  const explorer = cosmiconfig('pgharbor', { searchPlaces: configSearchPlaces, searchStrategy: 'global' });
  try {
    if (configFile) {
      const result = await explorer.load(path.resolve(cwd, configFile));
      if (!result || result.isEmpty) throw new ConfigError(`config file ${configFile} is empty`, 'describe at least one server under "servers"');
      return { raw: result.config, filepath: result.filepath };
    }
    const found = (await explorer.search(cwd)) ?? (await explorer.search('/etc/pgharbor'));
    if (!found) {
      throw new ConfigError(
        'no pgharbor config file found',
        `create pgharbor.config.yaml in ${cwd} (or a parent directory, or /etc/pgharbor), or pass --config FILE`,
      );
    }
    if (found.isEmpty) throw new ConfigError(`config file ${found.filepath} is empty`, 'describe at least one server under "servers"');
    return { raw: found.config, filepath: found.filepath };
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`config file ${configFile} does not exist`, 'check the path given to --config');
    throw new ConfigError(`cannot read config ${configFile ?? ''}: ${errorMessage(error)}`.replace('  ', ' '), 'fix the syntax of the config file');
  }
}

import type { JsonSchema } from './json-schema.js';

/** Server settings of the streaming archiver (`pgharbor receive-wal`, pg_receivewal). */
export interface StreamingServerOptions {
  /** Physical replication slot pg_receivewal streams through; default "pgharbor". */
  slot?: string;
  /** Run pg_receivewal for this server (`receive-wal`, `cron`); `check` then reports on it. */
  streaming_archiver?: boolean;
  /** pg_receivewal --synchronous: flush and confirm every write, so synchronous_standby_names can name pgharbor_receive_wal. */
  synchronous_streaming?: boolean;
  /** Local directory pg_receivewal writes into; default <state_dir>/<server>/streaming. */
  wal_spool_dir?: string;
  /** auto: receive-wal creates a missing slot when it starts; manual: only `receive-wal --create-slot` does. */
  create_slot?: 'auto' | 'manual';
}

export const streamingServerProperties: Record<string, JsonSchema> = {
  slot: {
    type: 'string',
    pattern: '^[a-z0-9_]{1,63}$',
    description: 'physical replication slot for receive-wal (lower case letters, digits, _; default pgharbor)',
  },
  streaming_archiver: { type: 'boolean', description: 'archive WAL by streaming (pg_receivewal through `pgharbor receive-wal`)' },
  synchronous_streaming: {
    type: 'boolean',
    description: "pg_receivewal --synchronous: confirm each flush, so that synchronous_standby_names = 'pgharbor_receive_wal' makes commits wait for the archive",
  },
  wal_spool_dir: { type: 'string', minLength: 1, description: 'local directory pg_receivewal writes into (default <state_dir>/<server>/streaming)' },
  create_slot: { enum: ['auto', 'manual'], description: 'auto (default): receive-wal creates a missing slot; manual: only receive-wal --create-slot does' },
};

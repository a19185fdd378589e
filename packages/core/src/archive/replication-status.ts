import type { ServerHandle } from '../server-handle.js';

export interface ReplicationClient {
  pid: number;
  applicationName: string;
  user: string;
  clientAddress: string | null;
  clientPort: number | null;
  state: string;
  syncState: string;
  syncPriority: number;
  startedAt: string;
  sentLsn: string | null;
  writeLsn: string | null;
  flushLsn: string | null;
  replayLsn: string | null;
  /** Bytes behind the current LSN. */
  sentLag: number | null;
  writeLag: number | null;
  flushLag: number | null;
  replayLag: number | null;
  slot: string | null;
}

export interface ReplicationSlotInfo {
  name: string;
  type: string;
  active: boolean;
  restartLsn: string | null;
  walStatus: string | null;
  /** Bytes of WAL the slot holds back. */
  retainedBytes: number | null;
}

export interface ReplicationStatus {
  currentLsn: string;
  inRecovery: boolean;
  clients: ReplicationClient[];
  slots: ReplicationSlotInfo[];
}

/** `pgharbor replication-status`: what pg_stat_replication and pg_replication_slots say, with lags in bytes. */
export async function replicationStatus(server: ServerHandle): Promise<ReplicationStatus> {
  const client = await server.connect();
  try {
    const head = await client.query(
      `SELECT pg_is_in_recovery() AS in_recovery,
              (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn`,
    );
    const current = head.rows[0].lsn as string;
    // The head is read a moment before the clients: a client may have moved past it since, which is no lag (never a negative one).
    const clients = await client.query(
      `SELECT r.pid, r.application_name, r.usename, host(r.client_addr) AS client_addr, r.client_port, r.state, r.sync_state, r.sync_priority,
              r.backend_start, r.sent_lsn::text, r.write_lsn::text, r.flush_lsn::text, r.replay_lsn::text,
              GREATEST(0, pg_wal_lsn_diff($1::pg_lsn, r.sent_lsn))::bigint AS sent_lag,
              GREATEST(0, pg_wal_lsn_diff($1::pg_lsn, r.write_lsn))::bigint AS write_lag,
              GREATEST(0, pg_wal_lsn_diff($1::pg_lsn, r.flush_lsn))::bigint AS flush_lag,
              GREATEST(0, pg_wal_lsn_diff($1::pg_lsn, r.replay_lsn))::bigint AS replay_lag,
              s.slot_name
         FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
        ORDER BY r.sync_priority DESC, r.application_name`,
      [current],
    );
    const slots = await client.query(
      `SELECT slot_name, slot_type, active, restart_lsn::text, wal_status,
              CASE WHEN restart_lsn IS NULL THEN NULL ELSE pg_wal_lsn_diff($1::pg_lsn, restart_lsn)::bigint END AS retained
         FROM pg_replication_slots ORDER BY slot_name`,
      [current],
    );
    const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
    return {
      currentLsn: current,
      inRecovery: head.rows[0].in_recovery,
      clients: clients.rows.map((r) => ({
        pid: r.pid,
        applicationName: r.application_name,
        user: r.usename,
        clientAddress: r.client_addr,
        clientPort: r.client_port,
        state: r.state,
        syncState: r.sync_state,
        syncPriority: r.sync_priority,
        startedAt: new Date(r.backend_start).toISOString(),
        sentLsn: r.sent_lsn,
        writeLsn: r.write_lsn,
        flushLsn: r.flush_lsn,
        replayLsn: r.replay_lsn,
        sentLag: num(r.sent_lag),
        writeLag: num(r.write_lag),
        flushLag: num(r.flush_lag),
        replayLag: num(r.replay_lag),
        slot: r.slot_name,
      })),
      slots: slots.rows.map((r) => ({ name: r.slot_name, type: r.slot_type, active: r.active, restartLsn: r.restart_lsn, walStatus: r.wal_status, retainedBytes: num(r.retained) })),
    };
  } finally {
    await client.end().catch(() => {});
  }
}

import type { JsonSchemaObject } from './config/json-schema.js';

/** An event sent to notification targets (see issue "notifications"). */
export interface HarborNotification {
  event: string;
  server: string;
  time: string;
  host: string;
  [field: string]: unknown;
}

export interface Notifier {
  send(notification: HarborNotification): Promise<void>;
}

/** What a notifier plugin registers under its config `type`. */
export interface NotifierFactory {
  schema: JsonSchemaObject;
  create(options: Record<string, unknown>): Notifier;
}

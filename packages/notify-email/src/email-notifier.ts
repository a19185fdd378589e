import { readFileSync } from 'node:fs';
import { PermanentDeliveryError, secretRefSchema, type JsonSchemaObject, type Notifier, type NotifierContext, type SecretRef } from '@pgharbor/core';
import { emailMessage } from './email-message.js';

export interface EmailOptions {
  host: string;
  /** Default 587, or 465 with `secure`. */
  port?: number;
  /** TLS from the first byte (SMTPS, port 465); otherwise STARTTLS. */
  secure?: boolean;
  /** STARTTLS: "required" (default: refuse to send in clear text) or "opportunistic". */
  starttls?: 'required' | 'opportunistic';
  user?: string;
  password?: SecretRef;
  from: string;
  to: string | string[];
  /** Default "[pgharbor]". */
  subject_prefix?: string;
  /** PEM file of the CA(s) to trust for the server's certificate, instead of the system's. */
  ca_file?: string;
  /** Verify the server's certificate (default true). */
  verify_tls?: boolean;
}

export const emailSchema: JsonSchemaObject = {
  type: 'object',
  properties: {
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    secure: { type: 'boolean' },
    starttls: { enum: ['required', 'opportunistic'] },
    user: { type: 'string', minLength: 1 },
    password: secretRefSchema,
    from: { type: 'string', minLength: 3 },
    to: { anyOf: [{ type: 'string', minLength: 3 }, { type: 'array', minItems: 1, items: { type: 'string', minLength: 3 } }] },
    subject_prefix: { type: 'string' },
    ca_file: { type: 'string', minLength: 1, format: 'path' },
    verify_tls: { type: 'boolean' },
  },
  required: ['host', 'from', 'to'],
};

/**
 * Mail one event over SMTP with nodemailer: STARTTLS required unless told
 * otherwise (a password never crosses the network in clear), certificates
 * verified. nodemailer is loaded on first use, so commands that never mail
 * (archive-push, once per WAL segment) do not pay for it.
 */
export function createEmailNotifier(options: EmailOptions, context: NotifierContext): Notifier {
  const password = options.password ? context.secret(options.password, 'password') : undefined;
  const ca = options.ca_file ? readFileSync(options.ca_file, 'utf8') : undefined;
  const transport = async (timeouts: { connectionTimeout?: number; greetingTimeout?: number; socketTimeout?: number } = {}) => {
    const nodemailer = await import('nodemailer');
    return nodemailer.createTransport({
      host: options.host,
      port: options.port,
      secure: options.secure ?? false,
      requireTLS: !options.secure && (options.starttls ?? 'required') === 'required',
      auth: options.user ? { user: options.user, pass: password } : undefined,
      tls: { rejectUnauthorized: options.verify_tls ?? true, ...(ca ? { ca } : {}) },
      ...timeouts,
    });
  };
  const where = `smtp://${options.host}:${options.port ?? (options.secure ? 465 : 587)}`;

  return {
    async send(event, signal) {
      const mailer = await transport();
      try {
        const { subject, text } = emailMessage(event, options.subject_prefix ?? '[pgharbor]');
        await mailer.sendMail({
          from: options.from,
          to: options.to,
          subject,
          text,
          headers: { 'X-Pgharbor-Event': event.event, 'X-Pgharbor-Delivery': event.id },
          signal,
        });
      } catch (error) {
        const smtp = error as { responseCode?: number; message: string };
        const message = `${where}: ${signal.aborted ? 'timed out' : smtp.message}`;
        // 5xx: the server refused for good (bad recipient, authentication); 4xx and network errors may pass later.
        if (smtp.responseCode && smtp.responseCode >= 500) throw new PermanentDeliveryError(message);
        throw new Error(message);
      } finally {
        mailer.close();
      }
    },

    async check() {
      // verify() takes no signal: bound it by the connection's own timeouts.
      const mailer = await transport({ connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 5000 });
      try {
        await mailer.verify();
        return { ok: true, detail: `${where}${options.user ? `, as ${options.user}` : ''}` };
      } catch (error) {
        return { ok: false, detail: `${where}: ${(error as Error).message}`, hint: 'check host, port, TLS and credentials of this e-mail target' };
      } finally {
        mailer.close();
      }
    },
  };
}

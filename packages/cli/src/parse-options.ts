import { InvalidArgumentError } from 'commander';

export function parseRepo(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a repository number: 1, 2, …');
  return n;
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a whole number of at least 1');
  return n;
}

/** --tablespace-map NAME=PATH, repeatable. */
export function collectMapping(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = value.indexOf('=');
  if (at <= 0 || at === value.length - 1) throw new InvalidArgumentError('NAME=PATH');
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}

/**
 * Backup ids are the UTC start time, as Barman names them
 * (20211016T092814), so that they sort by age and read as a date.
 */
export function backupIdFor(date: Date): string {
  const iso = date.toISOString(); // 2021-10-16T09:28:14.123Z
  return iso.slice(0, 19).replace(/[-:]/g, '');
}

const backupIdPattern = /^\d{8}T\d{6}(?:_\d+)?$/;

export function isBackupId(value: string): boolean {
  return backupIdPattern.test(value);
}

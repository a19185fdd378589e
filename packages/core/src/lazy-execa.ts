/**
 * execa, loaded when a command first runs a program. It is about a hundred
 * modules, and every pgharbor command pays at start-up for what it loads:
 * most commands (list-servers, restore, show-backup, ...) never run one.
 */
export const loadExeca = () => import('execa').then((module) => module.execa);

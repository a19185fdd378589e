/** Recorded in every manifest, so a future reader knows which writer produced it. */
export const PGHARBOR_VERSION = '0.1.0';

// What every object of the cluster layer is: a Kubernetes manifest, labelled ours and
// applied by our field manager (so rollback can tell ours from the user's).

export const FIELD_MANAGER = 'igpu-split';
export const OURS = { 'app.kubernetes.io/managed-by': 'igpu-split' } as const;

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

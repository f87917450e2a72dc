// Certificates are always verified (README, "Security notes"). Node reads
// NODE_TLS_REJECT_UNAUTHORIZED at every TLS connection (internal/tls/wrap connect →
// internal/options getAllowUnauthorized, Node v24.22.3) and with '0' would trust any
// certificate for Proxmox, Kubernetes and the Image Factory alike. So the CLI drops it
// before its first connection — which also keeps Node's own warning away — and says so.

/** Removes the variable; returns the one line to tell the user, when it asked for '0'. */
export function dropInsecureTlsVariable(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env.NODE_TLS_REJECT_UNAUTHORIZED;
  if (value === undefined) return undefined;
  delete env.NODE_TLS_REJECT_UNAUTHORIZED;
  return value === '0'
    ? 'igpu-split: ignoring NODE_TLS_REJECT_UNAUTHORIZED=0: certificates are always verified — give caFile or fingerprint in the lab file, and the cluster CA in the kubeconfig\n'
    : undefined;
}

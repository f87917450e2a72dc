// A self-signed certificate for a server of ours on loopback (the Proxmox simulator, the
// Kubernetes API server), made at start so clients verify it like any other: by its
// fingerprint or as its own CA.

import { generate } from 'selfsigned';

export async function loopbackCertificate(commonName: string): Promise<{ key: string; cert: string }> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      // A CA as well, so a kubeconfig's certificate-authority-data may name it.
      { name: 'basicConstraints', cA: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}

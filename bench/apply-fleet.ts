// One igpu-split process doing gather + plan + apply (no reboot) on every host given,
// all hosts at once: `node bench/apply-fleet.ts <identity> <known_hosts> <address:port>…`.
import type { HostAccess } from '../src/access/host.ts';
import { connectSsh } from '../src/access/ssh.ts';
import { hostLayer } from '../src/host/layer.ts';

/** Gather, plan and apply of one host: the one place this file calls the engine. */
async function applyHost(host: HostAccess): Promise<void> {
  const layer = hostLayer(host);
  await layer.apply(layer.plan(await layer.gather()), { say: () => {} });
}

const [identityFile, knownHostsFile, ...targets] = process.argv.slice(2);
await Promise.all(
  targets.map(async (target) => {
    const host = await connectSsh({ url: `ssh://root@${target}`, identityFile, knownHostsFile });
    try {
      await applyHost(host);
    } finally {
      await host.close();
    }
  }),
);

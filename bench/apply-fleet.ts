// One igpu-split process doing gather + plan + apply (no reboot) on every host given,
// all hosts at once: `node bench/apply-fleet.ts <identity> <known_hosts> <address:port>…`.
import { connectSsh } from '../src/access/ssh.ts';
import { applyHostPlan } from '../src/host/apply.ts';
import { gatherHostFacts } from '../src/host/gather.ts';
import { planHost } from '../src/host/plan.ts';

const [identityFile, knownHostsFile, ...targets] = process.argv.slice(2);
await Promise.all(
  targets.map(async (target) => {
    const host = await connectSsh({ url: `ssh://root@${target}`, identityFile, knownHostsFile });
    try {
      await applyHostPlan(host, planHost(await gatherHostFacts(host)));
    } finally {
      await host.close();
    }
  }),
);

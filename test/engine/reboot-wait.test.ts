// A reboot that takes a while is not silent (issue 15 item 7): on the demo lab, pve1's
// new boot id shows only 10 s after `systemctl reboot`; meanwhile the apply reports the
// reboot wait — what it waits for, how long so far and the limit — as `waiting` events
// of the host stage, the lines the CLI prints without a terminal.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HostAccess } from '../../src/access/host.ts';
import { describeWait } from '../../src/core/waits.ts';
import { type ApplyEvent, applyLab } from '../../src/engine/apply-lab.ts';
import { BOOT_ID } from '../../src/linux/reboot.ts';
import { withDemo } from '../support/demo.ts';

const REBOOT_MS = 10_000;

/** The host as the demo gives it, except that after a reboot the old boot id is read for REBOOT_MS. */
function slowBoot(host: HostAccess, rebooted: { at?: number; id?: string }): HostAccess {
  return new Proxy(host, {
    get(target, key) {
      if (key === 'run')
        return async (command: string, options?: { stdin?: string; timeoutMs?: number }) => {
          if (command === 'systemctl reboot') {
            rebooted.id = (await target.readFile(BOOT_ID)).toString();
            rebooted.at = Date.now();
          }
          return target.run(command, options);
        };
      if (key === 'readFile')
        return async (path: string) =>
          path === BOOT_ID && rebooted.at !== undefined && Date.now() - rebooted.at < REBOOT_MS
            ? Buffer.from(rebooted.id ?? '')
            : target.readFile(path);
      const value = Reflect.get(target, key);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

test('a 10 s host reboot is reported while it lasts: the wait, elapsed and limit, from the host stage', async () => {
  await withDemo(async (demo) => {
    const rebooted: { at?: number; id?: string } = {};
    const connections = {
      ...demo.connections,
      host: async (node: string) => {
        const host = await demo.connections.host(node);
        return node === 'pve1' ? slowBoot(host, rebooted) : host;
      },
    };
    const events: ApplyEvent[] = [];
    await applyLab(demo.lab, connections, {
      labFile: demo.labFile,
      pollMs: 100,
      rebootTimeoutMs: 60_000,
      reporter: { report: (event) => events.push(event) },
    });
    assert.ok(rebooted.at !== undefined, 'pve1 was rebooted');
    const lines = events.flatMap((event) =>
      event.kind === 'waiting' && event.stage?.id === 'pve1/host' ? [describeWait(event.wait)] : [],
    );
    const reboot = lines.filter((line) =>
      /^ssh:\/\/root@pve1\.demo: still waiting for the machine to come back from its reboot \(\d+ s so far; gives up after 60 s\)$/.test(
        line,
      ),
    );
    // How often (after 2 s, then at least every 5 s) is checked on mocked time in
    // test/core/guards.test.ts; real time here only shows the reboot wait reaches the Reporter.
    assert.ok(reboot.length >= 2, `at least two lines during the 10 s wait:\n${lines.join('\n')}`);
  });
});

// The lab-wide first stage: the cluster PCI mapping, before any VM attaches through it.

import { mappingLayer } from '../../mapping/layer.ts';
import type { Stage } from '../scheduler.ts';
import { fingerprintOf, type StageContext } from './context.ts';

export function mappingStage({ plan, connections, lab }: StageContext): Stage[] {
  const mapping = plan.mapping;
  if (mapping.steps.length === 0) return [];
  const layer = mappingLayer(connections.proxmox, mapping.name, [...new Set(lab.vms.map((vm) => vm.host))]);
  return [
    {
      id: 'lab/mapping',
      group: 'lab',
      fingerprint: fingerprintOf(mapping.steps.map((s) => s.id + (s.diff ?? ''))),
      title: `mapping ${mapping.name}`,
      run: async (say) => {
        await layer.apply(mapping, { say });
        say(`mapping ${mapping.name} ${mapping.create ? 'created' : 'updated'}`);
      },
    },
  ];
}

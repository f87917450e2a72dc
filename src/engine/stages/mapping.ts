// The lab-wide first stage: the cluster PCI mapping, before any VM attaches through it.

import { applyMappingPlan } from '../../mapping/apply.ts';
import { mappingLayer } from '../../mapping/layer.ts';
import type { MappingPlan } from '../../mapping/plan.ts';
import type { Stage } from '../scheduler.ts';
import { fingerprintOf, type StageContext } from './context.ts';

export function mappingStage(context: StageContext): Stage[] {
  return [...gvtMappingStage(context), ...vfPoolStage(context)];
}

/**
 * The VF pool's entries for VFs Proxmox lists already (a host made them before this run);
 * the VFs a host makes in this run get theirs in its VM stage, once they exist.
 */
function vfPoolStage({ plan, connections }: StageContext): Stage[] {
  const pool = plan.vfPool;
  if (!pool || pool.steps.length === 0) return [];
  const layer = { apply: (p: MappingPlan) => applyMappingPlan(connections.proxmox, p) };
  return [
    {
      id: 'lab/vf-pool',
      group: 'lab',
      fingerprint: fingerprintOf(pool.steps.map((s) => s.id + (s.diff ?? ''))),
      title: `mapping ${pool.name}`,
      run: async (say) => {
        await layer.apply(pool);
        say(`mapping ${pool.name} ${pool.create ? 'created' : 'updated'}`);
      },
    },
  ];
}

function gvtMappingStage({ plan, connections, lab }: StageContext): Stage[] {
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

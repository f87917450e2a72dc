import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coreGenerationFromModelName, lookupIntelCpuModel } from '../../src/knowledge/cpu-models.ts';

const codename = (model: number, stepping?: number) => lookupIntelCpuModel(6, model, stepping)?.codename;

test('model numbers from intel-family.h map to codenames', () => {
  assert.equal(codename(0x5e, 3), 'Skylake'); // i7-6700K
  assert.equal(codename(0x47), 'Broadwell'); // i7-5775C
  assert.equal(codename(0x4f), 'Broadwell-X'); // Xeon E5-2680 v4
  assert.equal(codename(0xa5, 3), 'Comet Lake'); // i5-10500
  assert.equal(codename(0x8c, 1), 'Tiger Lake'); // i5-1135G7
  assert.equal(codename(0x5c, 9), 'Apollo Lake'); // J3455
  assert.equal(codename(0x7a), 'Gemini Lake');
  assert.equal(codename(0xbe, 0), 'Alder Lake-N'); // N100
  assert.equal(codename(0xbf, 2), 'Raptor Lake'); // i5-13500
  assert.equal(codename(0x97), 'Alder Lake');
  assert.equal(codename(0xaa), 'Meteor Lake');
  assert.equal(lookupIntelCpuModel(6, 0x8f)?.segment, 'server');
});

test('stepping separates Kaby Lake, Coffee Lake (Refresh), Whiskey and Amber Lake', () => {
  assert.deepEqual(lookupIntelCpuModel(6, 0x9e, 10), {
    model: 0x9e,
    codename: 'Coffee Lake',
    segment: 'desktop',
    coreGeneration: 8,
  }); // i5-8500T
  assert.equal(lookupIntelCpuModel(6, 0x9e, 12)?.coreGeneration, 9); // i9-9900K
  assert.equal(codename(0x9e, 12), 'Coffee Lake Refresh');
  assert.equal(codename(0x9e, 9), 'Kaby Lake'); // i7-7700K
  assert.equal(codename(0x8e, 9), 'Amber Lake');
  assert.equal(codename(0x8e, 11), 'Whiskey Lake');
  assert.equal(codename(0x9e), 'Kaby Lake / Coffee Lake');
});

test('unknown models and other families are unknown', () => {
  assert.equal(lookupIntelCpuModel(6, 0x01), undefined);
  assert.equal(lookupIntelCpuModel(25, 0x50), undefined); // an AMD family
  assert.equal(lookupIntelCpuModel(15, 0x9e), undefined);
});

test('Core generation from the model name', () => {
  const cases: [string, number | undefined][] = [
    ['Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz', 8],
    ['Intel(R) Core(TM) i7-6700K CPU @ 4.00GHz', 6],
    ['Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz', 9],
    ['Intel(R) Core(TM) i5-10500 CPU @ 3.10GHz', 10],
    ['11th Gen Intel(R) Core(TM) i5-1135G7 @ 2.40GHz', 11],
    ['Intel(R) Core(TM) i5-1135G7 @ 2.40GHz', 11],
    ['Intel(R) Core(TM) i7-1065G7 CPU @ 1.30GHz', 10],
    ['13th Gen Intel(R) Core(TM) i5-13500', 13],
    ['Intel(R) Core(TM) i7-5775C CPU @ 3.30GHz', 5],
    ['Intel(R) Core(TM) Ultra 7 155H', undefined],
    ['Intel(R) N100', undefined],
    ['Intel(R) Celeron(R) CPU J3455 @ 1.50GHz', undefined],
    ['Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz', undefined],
    ['AMD Ryzen 5 5600G with Radeon Graphics', undefined],
  ];
  for (const [name, generation] of cases) assert.equal(coreGenerationFromModelName(name), generation, name);
});

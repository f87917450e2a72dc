// The demo lab for one test: started, handed over, always closed.

import { type DemoLab, startDemoLab } from '../../src/demo/lab.ts';

export async function withDemo(body: (demo: DemoLab) => Promise<void>): Promise<void> {
  const demo = await startDemoLab();
  try {
    await body(demo);
  } finally {
    await demo.close();
  }
}

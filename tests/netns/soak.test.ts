// The soak (ts/bench/soak.ts, `npm run soak`) at CI's budget: 10 minutes, the agent restarted
// every 2.5 minutes, endpoints churning and connections flowing throughout. SOAK_MINUTES=<n>
// runs longer. Goals as the script states them: 0 failed connections, no fd growth, RSS ≤ 5%.
import test from 'ava';
import { soak } from '../../ts/bench/soak.js';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);

test.serial(`a ${MINUTES}-minute soak: no failed connection, no fd growth, flat memory`, async (t) => {
  t.timeout((MINUTES * 60 + 180) * 1000);
  const r = await soak({ minutes: MINUTES, restartEveryS: Math.min(150, MINUTES * 30) });
  t.log(`${r.restarts} restarts, ${r.churnWrites} endpoint rewrites, ${r.connections} connections, ${r.failed} failed; ` +
    `RSS growth after warm-up ${JSON.stringify(r.rssGrowthPct)} %, fd growth ${JSON.stringify(r.fdGrowth)}; ` +
    `sync p50/p99 ${r.syncMs.p50.toFixed(2)}/${r.syncMs.p99.toFixed(2)} ms; event to rules p50/p99 ${r.eventToRulesMs.p50}/${r.eventToRulesMs.p99} ms`);
  t.true(r.connections > 1000, 'traffic flowed');
  t.true(r.restarts >= 1, 'the agent was restarted');
  t.deepEqual(r.failures, {}, 'failed connections');
  t.true(r.fdGrowth.length >= 1 && r.fdGrowth.every((g) => g <= 2), `fd growth ${r.fdGrowth}`);
  t.true(r.rssGrowthPct.every((g) => g <= 5), `RSS growth ${r.rssGrowthPct}`);
});

// Runs a FakeApiServer in the network namespace it is started in (the test
// topology's node), driven by JSON lines on stdin; answers "ready <url>" and
// "done <op>" on stdout. Lets a netns test run the agent against the API path.
import { createInterface } from 'node:readline';
import { FakeApiServer, type Resource } from './fake-apiserver.js';

interface Command {
  op: 'upsert' | 'remove' | 'stop' | 'start' | 'drop' | 'expire';
  resource?: Resource;
  obj?: object;
  namespace?: string;
  name?: string;
}

const server = new FakeApiServer();
await server.start();
process.stdout.write(`ready ${server.url}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as Command;
  if (cmd.op === 'upsert') server.upsert(cmd.resource!, cmd.obj);
  else if (cmd.op === 'remove') server.remove(cmd.resource!, cmd.namespace, cmd.name!);
  else if (cmd.op === 'stop') await server.stop();
  else if (cmd.op === 'start') await server.start();
  else if (cmd.op === 'drop') server.dropWatches();
  else if (cmd.op === 'expire') server.expireWatches();
  process.stdout.write(`done ${cmd.op}\n`);
}

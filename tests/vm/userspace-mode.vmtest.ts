// userspace mode's packet matrix and the rest (tests/netns/userspace-matrix.ts) inside the VM,
// whose kernel has the dummy driver: the Service addresses go on kproxy's link kproxy-vips.
import test from 'ava';
import { userspaceMatrix } from '../netns/userspace-matrix.js';

/** Under emulation the agent takes a minute or more to its first program. */
const READY_MS = 300_000;

test.serial('userspace mode: the packet matrix on the dummy link kproxy-vips', (t) => userspaceMatrix(t, 'kproxy-vips', READY_MS));

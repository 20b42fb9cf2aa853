// userspace mode's packet matrix and the rest (tests/netns/userspace-matrix.ts) on this kernel,
// which has no dummy driver: the Service addresses go on lo, marked as kproxy's.
import test from 'ava';
import { userspaceMatrix } from './userspace-matrix.js';

test.serial('the packet matrix in userspace mode, on lo, with no netfilter state', (t) => userspaceMatrix(t, 'lo'));

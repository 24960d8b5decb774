import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BoundedMemo } from '../../src/bounded-memo.ts';

test('an answer is computed once per key, and a full memo starts over', () => {
  const memo = new BoundedMemo<string>(2);
  const computed: string[] = [];
  const answer = (key: string) =>
    memo.get(key, () => {
      computed.push(key);
      return `answer ${key}`;
    });
  assert.equal(answer('a'), 'answer a');
  assert.equal(answer('a'), 'answer a');
  assert.equal(answer('b'), 'answer b');
  assert.deepEqual(computed, ['a', 'b']);
  // Full: the third key empties it, so a is computed again, and still right.
  assert.equal(answer('c'), 'answer c');
  assert.equal(answer('a'), 'answer a');
  assert.deepEqual(computed, ['a', 'b', 'c', 'a']);
});

test('set replaces an answer, and a new key in a full memo starts it over', () => {
  const memo = new BoundedMemo<number>(2);
  memo.set('a', 1);
  memo.set('b', 2);
  memo.set('a', 3);
  assert.equal(memo.size, 2);
  assert.equal(
    memo.get('a', () => assert.fail('a is known')),
    3,
  );
  memo.set('c', 4);
  assert.equal(memo.size, 1);
  assert.equal(
    memo.get('b', () => 5),
    5,
  );
});

// openai_sdk.cjs: the official `openai` npm SDK, with its defaults, against strata serve
// --llm-upstream (in front of the test origin's fake OpenAI API). Run by
// tests/integration/test_llm_openai_sdk.c, which starts the processes and installs the package:
//
//     NODE_PATH=<dir>/node_modules node openai_sdk.cjs http://127.0.0.1:PORT/v1
//
// Each check prints "ok <what>"; the first that fails prints "FAIL <what>: <why>" and exits 1.
'use strict';
const OpenAI = require('openai');

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: 'sk-client-key', maxRetries: 0 });

function check(cond, what, why) {
  if (!cond) {
    console.log(`FAIL ${what}: ${why}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

async function chat(content, extra = {}) {
  const { data, response } = await client.chat.completions
    .create({ model: 'gpt-test', messages: [{ role: 'user', content }], temperature: 0, ...extra })
    .withResponse();
  return { data, xcache: response.headers.get('x-cache') };
}

async function streamed(content, extra = {}) {
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'gpt-test', messages: [{ role: 'user', content }], temperature: 0,
              stream: true, ...extra })
    .withResponse();
  let text = '', finish = null, id = null, usage = null;
  for await (const chunk of stream) {
    id = chunk.id;
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (c && c.delta && c.delta.content) text += c.delta.content;
    if (c && c.finish_reason) finish = c.finish_reason;
  }
  return { text, finish, id, usage, xcache: response.headers.get('x-cache') };
}

async function main() {
  // Plain chat: a miss, then the same answer from the cache.
  const a = await chat('hello from the sdk');
  check(a.xcache === 'MISS', 'chat miss', `X-Cache ${a.xcache}`);
  check(a.data.choices[0].message.content === 'Echo: hello from the sdk', 'chat content',
        JSON.stringify(a.data.choices[0]));
  const b = await chat('hello from the sdk');
  check(b.xcache === 'HIT-L1' && b.data.id === a.data.id, 'chat hit', `${b.xcache} ${b.data.id}`);

  // The cached answer streamed: the SDK reads the replayed events into the same text.
  const s = await streamed('hello from the sdk', { stream_options: { include_usage: true } });
  check(s.xcache === 'HIT-L1', 'stream hit', `X-Cache ${s.xcache}`);
  check(s.text === a.data.choices[0].message.content && s.finish === 'stop' && s.id === a.data.id,
        'stream replay', JSON.stringify(s));
  check(s.usage && s.usage.total_tokens === a.data.usage.total_tokens, 'stream usage',
        JSON.stringify(s.usage));

  // A streamed miss, then the same request plain: one entry for both.
  const m = await streamed('a streamed question');
  check(m.xcache === 'MISS' && m.text === 'Echo: a streamed question' && m.finish === 'stop',
        'stream miss', JSON.stringify(m));
  const p = await chat('a streamed question');
  check(p.xcache === 'HIT-L1' && p.data.choices[0].message.content === m.text &&
        p.data.id === m.id, 'plain after stream', `${p.xcache} ${JSON.stringify(p.data)}`);

  // Embeddings with the SDK's defaults (it asks for base64 and decodes it itself), cached per
  // input: a batch that overlaps the first sends only its new input upstream.
  const e1 = await client.embeddings.create({ model: 'emb-test', input: ['one', 'two'] })
    .withResponse();
  check(e1.response.headers.get('x-cache') === 'MISS', 'embeddings miss',
        e1.response.headers.get('x-cache'));
  const e2 = await client.embeddings.create({ model: 'emb-test', input: ['two', 'three', 'one'] })
    .withResponse();
  const e = e2.data;
  check(e2.response.headers.get('x-cache-inputs') === 'hits=2 misses=1', 'embeddings partly cached',
        e2.response.headers.get('x-cache-inputs'));
  check(e.data.length === 3 && e.data.every((d, i) => d.index === i &&
        Array.isArray(d.embedding) && d.embedding.length === 8), 'embeddings',
        JSON.stringify(e.data.map((d) => [d.index, d.embedding.length])));
  check(JSON.stringify(e.data[0].embedding) === JSON.stringify(e1.data.data[1].embedding) &&
        JSON.stringify(e.data[2].embedding) === JSON.stringify(e1.data.data[0].embedding),
        'embeddings in order', 'the cached vectors differ from the fresh ones');

  // An error made by strata reads as an OpenAI error in the SDK.
  try {
    await client.chat.completions.create({ model: 'gpt-test', messages: 'not a list' });
    check(false, 'bad request', 'no error');
  } catch (err) {
    check(err instanceof OpenAI.BadRequestError && /messages/.test(err.message), 'bad request',
          String(err));
  }
  // A body over STRATA_MAX_BODY (1 MiB here) is refused before routing: still an OpenAI error.
  try {
    await client.chat.completions.create({
      model: 'gpt-test', messages: [{ role: 'user', content: 'x'.repeat(2 << 20) }] });
    check(false, 'body too large', 'no error');
  } catch (err) {
    check(err instanceof OpenAI.APIError && err.status === 413 && err.code === 'body_too_large' &&
          err.type === 'invalid_request_error' && /STRATA_MAX_BODY/.test(err.message),
          'body too large', String(err));
  }
  console.log('all ok');
}

main().catch((err) => {
  console.log(`FAIL exception: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});

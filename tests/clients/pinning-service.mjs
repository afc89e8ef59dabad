// The Pinning Service API through @ipfs-shipyard/pinning-service-client, the client generated
// from the IPFS Pinning Services API spec. Bearer token from POST /token, pin, status,
// filters, pagination by `before`, replace, delete, errors.
// Usage: node pinning-service.mjs <api url> <user> <password> <cid in IPFS> <cid>...
import assert from 'node:assert/strict'
import { Configuration, RemotePinningServiceClient, Status, TextMatchingStrategy } from '@ipfs-shipyard/pinning-service-client'
import { CID } from 'kubo-rpc-client'

const [url, user, password, ...cids] = process.argv.slice(2)
const same = (a, b) => CID.parse(a).equals(CID.parse(b))
// The generated client throws the failed Response itself.
const statusOf = (e) => (e.response ?? e).status
const all = [Status.Queued, Status.Pinning, Status.Pinned, Status.Failed]

// The access token IPFS Cluster users get: POST /token with basic auth.
const basic = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')
const tokenResp = await fetch(`${url}/token`, { method: 'POST', headers: { Authorization: basic } })
assert.equal(tokenResp.status, 200)
const { token } = await tokenResp.json()

const refused = new RemotePinningServiceClient(new Configuration({ endpointUrl: url, accessToken: 'wrong' }))
await assert.rejects(refused.pinsGet({}), (e) => statusOf(e) === 401)

const client = new RemotePinningServiceClient(new Configuration({ endpointUrl: url, accessToken: token }))

const first = await client.pinsPost({ pin: { cid: cids[0], name: 'Svc-First', meta: { app: 'test' } } })
assert.equal(first.status, Status.Queued)
assert.ok(same(first.pin.cid, cids[0]))
assert.ok(first.created instanceof Date)
assert.ok(first.delegates.length >= 1, 'delegates: the IPFS addresses to connect to')

const deadline = Date.now() + 60_000
for (;;) {
  const st = await client.pinsRequestidGet({ requestid: first.requestid })
  if (st.status === Status.Pinned) break
  assert.notEqual(st.status, Status.Failed)
  assert.ok(Date.now() < deadline, `still ${st.status}`)
  await new Promise((resolve) => setTimeout(resolve, 200))
}

for (const cid of cids.slice(1)) await client.pinsPost({ pin: { cid, name: 'other' } })

// Filters.
let r = await client.pinsGet({ name: 'svc-f', match: TextMatchingStrategy.Ipartial, status: all })
assert.equal(r.count, 1)
assert.equal(r.results[0].requestid, first.requestid)
assert.equal((await client.pinsGet({ name: 'svc-first', status: all })).count, 0, 'exact by default')
assert.equal((await client.pinsGet({ meta: { app: 'test' }, status: all })).count, 1)
assert.equal((await client.pinsGet({ meta: { app: 'other' }, status: all })).count, 0)
assert.equal((await client.pinsGet({ cid: [cids[0]], status: all })).count, 1)
assert.equal((await client.pinsGet({ status: [Status.Failed] })).count, 0)

// Pagination as the spec says clients do it: newest first, `before` = the oldest `created`.
const seen = []
let before
for (let page = 0; page < 10; page++) {
  r = await client.pinsGet({ limit: 2, status: all, before })
  assert.equal(r.count, cids.length - seen.length, 'count: every match left')
  assert.ok(r.results.length <= 2)
  for (let i = 1; i < r.results.length; i++) assert.ok(r.results[i - 1].created >= r.results[i].created)
  seen.push(...r.results.map((s) => s.requestid))
  if (r.results.length < 2) break
  before = r.results[r.results.length - 1].created
}
assert.equal(new Set(seen).size, cids.length, `every pin once: ${seen}`)

// Replace: the new pin takes the old one's place.
const last = cids[cids.length - 1]
const replaced = await client.pinsRequestidPost({ requestid: first.requestid, pin: { cid: last, name: 'replaced' } })
assert.ok(same(replaced.pin.cid, last))
await assert.rejects(client.pinsRequestidGet({ requestid: first.requestid }), (e) => statusOf(e) === 404)

// Delete, and bad input.
await client.pinsRequestidDelete({ requestid: replaced.requestid })
await assert.rejects(client.pinsRequestidGet({ requestid: replaced.requestid }), (e) => statusOf(e) === 404)
const badResp = await client.pinsPost({ pin: { cid: 'not-a-cid' } }).then(() => null, (e) => e.response ?? e)
assert.equal(badResp?.status, 400)
const badBody = await badResp.json()
assert.equal(badBody.error.reason, 'BAD_REQUEST')
assert.ok(badBody.error.details.length > 0)
await assert.rejects(client.pinsGet({ limit: 5000 }), (e) => statusOf(e) === 400)

const left = await client.pinsGet({ status: all, limit: 1000 })
console.log(JSON.stringify({ left: left.results.map((s) => s.pin.cid) }))

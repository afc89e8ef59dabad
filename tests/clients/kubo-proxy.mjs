// The IPFS proxy API through kubo-rpc-client, the Kubo RPC client IPFS's own JS projects
// use. Pins made through it land in the cluster; everything else reaches the IPFS node.
// Usage: node kubo-proxy.mjs <proxy url> <cid of content in IPFS>
import assert from 'node:assert/strict'
import { create, CID } from 'kubo-rpc-client'

const [url, existingText] = process.argv.slice(2)
const ipfs = create({ url })
const existing = CID.parse(existingText)

// Passed through: the node's own identity and content.
const id = await ipfs.id()
assert.ok(id.id.toString().length > 0)

// add: content goes to IPFS and its root into the cluster pinset.
const added = await ipfs.add('through the proxy\n')
assert.ok(added.cid, JSON.stringify(added))
let cat = ''
for await (const chunk of ipfs.cat(added.cid)) cat += new TextDecoder().decode(chunk)
assert.equal(cat, 'through the proxy\n')

// pin.add / pin.ls / pin.rm answered by the cluster.
const pinned = await ipfs.pin.add(existing)
assert.equal(pinned.toString(), existing.toString())
const listed = []
for await (const p of ipfs.pin.ls()) listed.push(p.cid.toString())
assert.ok(listed.includes(existing.toString()), listed.join(','))
assert.ok(listed.includes(added.cid.toString()), listed.join(','))
const one = []
for await (const p of ipfs.pin.ls({ paths: [existing] })) one.push([p.cid.toString(), p.type])
assert.deepEqual(one, [[existing.toString(), 'recursive']])

// An unpinned CID is an error, as Kubo's.
const removed = await ipfs.pin.rm(existing)
assert.equal(removed.toString(), existing.toString())
await assert.rejects(async () => {
  for await (const p of ipfs.pin.ls({ paths: [existing] })) void p
}, /not pinned/)
await assert.rejects(ipfs.pin.add('not-a-cid'), /invalid|not|CID/i)

const stat = await ipfs.repo.stat()
assert.ok(stat.repoSize > 0n, `repo size ${stat.repoSize}`)

console.log(JSON.stringify({ added: added.cid.toString() }))

// Smoke test of an IC network with the unmodified JS agent (@icp-sdk/core).
//
//   node smoke.mjs <url> <canister_id>
//
// <canister_id> must run the `counter` test canister (test-canisters/rust/counter):
// `inc : () -> (nat64)`, `get : () -> (nat64) query`, `whoami : () -> (principal) query`,
// `set_certified : (blob) -> ()` (traps for more than 32 bytes).
//
// The script makes exactly INCREMENTS successful `inc` calls, checks every reply
// and exits 0; on any failure it prints what went wrong and exits 1. Every HTTP
// request the agent makes is recorded (through the agent's `fetch` option, which
// only observes) so the script can check which endpoints the agent used.
// The last line of a successful run is `js-smoke: ok increments=<n> counter=<value>`.

import { HttpAgent, Actor, pollForResponse, StatePaths, RejectError, CertifiedRejectErrorCode }
    from '@icp-sdk/core/agent';
import { Ed25519KeyIdentity, ECDSAKeyIdentity, DelegationChain, DelegationIdentity }
    from '@icp-sdk/core/identity';
import { Secp256k1KeyIdentity } from '@icp-sdk/core/identity/secp256k1';
import { IDL } from '@icp-sdk/core/candid';
import { Principal } from '@icp-sdk/core/principal';

const INCREMENTS = 5;
const TIMEOUT_MS = 120_000;

const [url, canisterText] = process.argv.slice(2);
if (!url || !canisterText) {
    console.error('usage: node smoke.mjs <url> <canister_id>');
    process.exit(2);
}

const watchdog = setTimeout(() => {
    console.error(`js-smoke: FAILED: no result after ${TIMEOUT_MS / 1000} s`);
    process.exit(1);
}, TIMEOUT_MS);

// --- helpers ---------------------------------------------------------------

const log = (...args) => console.log('js-smoke:', ...args);

class SmokeFailure extends Error {}
function check(cond, what) {
    if (!cond) throw new SmokeFailure(what);
}

const toHex = (bytes) => Buffer.from(bytes).toString('hex');
const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// Every request any agent makes: "METHOD /path -> status".
const requests = [];
const observingFetch = async (input, init) => {
    const response = await fetch(input, init);
    const path = new URL(input instanceof Request ? input.url : input).pathname;
    requests.push(`${init?.method ?? 'GET'} ${path} -> ${response.status}`);
    return response;
};

function agentFor(identity) {
    return HttpAgent.create({
        host: url,
        identity,
        shouldFetchRootKey: true,
        // verifyQuerySignatures is left at its default (true).
        fetch: observingFetch,
        retryTimes: 0,
    });
}

const counterIdl = ({ IDL }) =>
    IDL.Service({
        inc: IDL.Func([], [IDL.Nat64], []),
        get: IDL.Func([], [IDL.Nat64], ['query']),
        whoami: IDL.Func([], [IDL.Principal], ['query']),
        set_certified: IDL.Func([IDL.Vec(IDL.Nat8)], [], []),
    });

const decodeNat64 = (bytes) => IDL.decode([IDL.Nat64], bytes)[0];
const noArgs = IDL.encode([], []);

// --- the test --------------------------------------------------------------

async function main() {
    const canisterId = Principal.fromText(canisterText);
    let incs = 0;

    // 1. Root key from /api/v2/status.
    const ed = Ed25519KeyIdentity.generate();
    const agent = await agentFor(ed);
    const root = agent.rootKey;
    check(root instanceof Uint8Array && root.length === 133, `root key is ${root?.length} bytes, expected 133`);
    check(toHex(root).startsWith('308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100'),
        'root key does not have the BLS12-381 DER prefix');
    const status = await agent.status();
    log(`status: replica_health_status=${status.replica_health_status} root key ${toHex(root).slice(-16)}`);

    // 2. A query with signature verification (the default): the agent first reads
    //    the subnet's node keys through read_state, then checks the node signature.
    const actor = Actor.createActor(counterIdl, { agent, canisterId });
    const start = await actor.get();
    log(`query get (verified) -> ${start}`);
    const raw = await agent.query(canisterId, { methodName: 'get', arg: noArgs });
    check(raw.status === 'replied', `query status ${raw.status}`);
    check(raw.signatures?.length === 1, `query reply carries ${raw.signatures?.length} node signatures, expected 1`);
    check(decodeNat64(raw.reply.arg) === start, 'raw query disagrees with actor query');

    // 3. Update through the actor, Ed25519 sender: v4 sync call, certificate in the reply.
    let v = await actor.inc();
    incs++;
    check(v === start + 1n, `inc returned ${v}, expected ${start + 1n}`);
    log(`update inc (Ed25519, v4 sync via Actor) -> ${v}`);

    // 4. Update with agent.update, secp256k1 sender; the certified reply is checked.
    const k1Agent = await agentFor(Secp256k1KeyIdentity.generate());
    const up = await k1Agent.update(canisterId, { methodName: 'inc', arg: noArgs });
    v = decodeNat64(up.reply);
    incs++;
    check(v === start + 2n, `inc returned ${v}, expected ${start + 2n}`);
    log(`update inc (secp256k1, v4 sync via agent.update) -> ${v}`);

    // 5. Asynchronous v2 call (202 Accepted), ECDSA P-256 sender, then polling
    //    read_state /request_status until the certified reply is there.
    const p256Agent = await agentFor(await ECDSAKeyIdentity.generate());
    const submitted = await p256Agent.call(canisterId, { methodName: 'inc', arg: noArgs, callSync: false });
    check(submitted.response.status === 202, `v2 call answered ${submitted.response.status}, expected 202`);
    const polled = await pollForResponse(p256Agent, { canisterId }, submitted.requestId);
    v = decodeNat64(polled.reply);
    incs++;
    check(v === start + 3n, `inc returned ${v}, expected ${start + 3n}`);
    log(`update inc (ECDSA P-256, v2 async call + read_state polling) -> ${v}, request id ${toHex(submitted.requestId)}`);

    // 6. read_state with certificate verification: time, module hash, controllers
    //    and the status of the request of step 5 (readable by its sender only).
    // (Values are looked up by the very KnownPath objects that were requested.)
    const moduleHashPath = StatePaths.canisterModuleHash(canisterId);
    const controllersPath = StatePaths.canisterControllers(canisterId);
    const rs = await p256Agent.readState(canisterId, {
        paths: [
            StatePaths.time,
            moduleHashPath,
            controllersPath,
            [new TextEncoder().encode('request_status'), submitted.requestId],
        ],
    });
    const time = rs.values.get(StatePaths.time);
    const moduleHash = rs.values.get(moduleHashPath);
    const controllers = rs.values.get(controllersPath);
    check(time instanceof Date && Math.abs(Date.now() - time.getTime()) < 60_000, `certified time ${time} is not now`);
    check(moduleHash instanceof Uint8Array && moduleHash.length === 32, 'module_hash is not 32 bytes');
    check(Array.isArray(controllers) && controllers.length >= 1, 'no controllers certified');
    const rsStatus = rs.verifiedCertificate.lookup_path(['request_status', submitted.requestId, 'status']);
    const rsReply = rs.verifiedCertificate.lookup_path(['request_status', submitted.requestId, 'reply']);
    check(rsStatus.status === 'Found' && new TextDecoder().decode(rsStatus.value) === 'replied',
        `request_status is ${rsStatus.status} ${rsStatus.value && new TextDecoder().decode(rsStatus.value)}`);
    check(rsReply.status === 'Found' && sameBytes(rsReply.value, polled.reply), 'certified reply differs');
    log(`read_state (verified): time ${time.toISOString()}, module_hash ${toHex(moduleHash).slice(0, 16)}..., ` +
        `controllers [${controllers.map((c) => c.toText()).join(', ')}], request_status replied`);

    // 7. A delegation chain: an Ed25519 session key delegated by another Ed25519 key,
    //    restricted to this canister. The sender is the delegating key's principal.
    const rootKey = Ed25519KeyIdentity.generate();
    const session = Ed25519KeyIdentity.generate();
    const chain = await DelegationChain.create(rootKey, session.getPublicKey(),
        new Date(Date.now() + 10 * 60 * 1000), { targets: [canisterId] });
    const delegated = DelegationIdentity.fromDelegation(session, chain);
    const delAgent = await agentFor(delegated);
    const delActor = Actor.createActor(counterIdl, { agent: delAgent, canisterId });
    v = await delActor.inc();
    incs++;
    check(v === start + 4n, `inc returned ${v}, expected ${start + 4n}`);
    const who = await delActor.whoami();
    check(who.toText() === rootKey.getPrincipal().toText(),
        `whoami under delegation is ${who.toText()}, expected ${rootKey.getPrincipal().toText()}`);
    log(`update inc (delegation chain, v4 sync) -> ${v}; whoami -> ${who.toText()}`);

    // 8. Anonymous sender.
    const anonAgent = await agentFor(undefined);
    const anonActor = Actor.createActor(counterIdl, { agent: anonAgent, canisterId });
    v = await anonActor.inc();
    incs++;
    check(v === start + 5n, `inc returned ${v}, expected ${start + 5n}`);
    check((await anonActor.whoami()).toText() === '2vxsx-fae', 'anonymous whoami is not 2vxsx-fae');
    log(`update inc (anonymous, v4 sync) -> ${v}`);

    // 9. A certified rejection: set_certified traps for more than 32 bytes.
    try {
        await actor.set_certified(new Uint8Array(33));
        throw new SmokeFailure('set_certified with 33 bytes succeeded, expected a reject');
    } catch (e) {
        if (e instanceof SmokeFailure) throw e;
        check(e instanceof RejectError && e.cause?.code instanceof CertifiedRejectErrorCode,
            `expected a certified reject, got ${e}`);
        const c = e.cause.code;
        check(c.rejectCode === 5, `reject code ${c.rejectCode}, expected 5 (CANISTER_ERROR)`);
        log(`update set_certified(33 bytes) -> certified reject ${c.rejectCode} ${c.rejectErrorCode}: ${c.rejectMessage}`);
    }

    // 10. A signed query rejection: a method the canister does not export.
    const rej = await agent.query(canisterId, { methodName: 'no_such_method', arg: noArgs });
    check(rej.status === 'rejected', `query of a missing method: status ${rej.status}`);
    check(rej.signatures?.length === 1, `query reject carries ${rej.signatures?.length} node signatures`);
    check(rej.reject_code === 3 || rej.reject_code === 5, `reject code ${rej.reject_code}`);
    log(`query no_such_method (verified) -> rejected ${rej.reject_code} ${rej.error_code}: ${rej.reject_message}`);

    // 11. The counter as seen by a fresh anonymous query.
    const end = await anonActor.get();
    check(end === start + BigInt(incs), `counter is ${end}, expected ${start + BigInt(incs)}`);
    check(incs === INCREMENTS, `made ${incs} increments, expected ${INCREMENTS}`);
    log(`query get (anonymous, verified) -> ${end}`);

    // Which endpoints the agent used.
    log('HTTP requests made:');
    const counts = new Map();
    for (const r of requests) counts.set(r, (counts.get(r) ?? 0) + 1);
    for (const [r, n] of counts) log(`  ${n} x ${r}`);
    const used = (re) => requests.some((r) => re.test(r));
    check(used(/^GET \/api\/v2\/status -> 200$/), 'no GET /api/v2/status');
    check(used(/^POST \/api\/v4\/canister\/[^/]+\/call -> 200$/), 'no v4 sync call answered 200');
    check(!used(/\/api\/v4\/canister\/[^/]+\/call -> 404/), 'v4 call answered 404 (the agent fell back to v2)');
    check(used(/^POST \/api\/v2\/canister\/[^/]+\/call -> 202$/), 'no v2 call answered 202');
    check(used(/^POST \/api\/v3\/canister\/[^/]+\/query -> 200$/), 'no v3 query answered 200');
    check(used(/^POST \/api\/v3\/canister\/[^/]+\/read_state -> 200$/), 'no v3 read_state answered 200');
    const bad = requests.filter((r) => !/-> (200|202)$/.test(r));
    check(bad.length === 0, `unexpected HTTP statuses: ${bad.join('; ')}`);

    return { incs, end };
}

try {
    const { incs, end } = await main();
    clearTimeout(watchdog);
    log(`ok increments=${incs} counter=${end}`);
    process.exit(0);
} catch (e) {
    console.error(`js-smoke: FAILED: ${e instanceof SmokeFailure ? e.message : e?.stack ?? e}`);
    if (e?.cause) console.error('js-smoke: cause:', e.cause);
    if (requests.length) console.error(`js-smoke: HTTP requests so far:\n  ${requests.join('\n  ')}`);
    process.exit(1);
}

"""Smoke test of an IC network with the unmodified Python agent ic-py.

    python smoke.py <url> <canister_id>

<canister_id> must run the `counter` test canister (test-canisters/rust/counter).

ic-py speaks only the v2 endpoints: an update is a v2 `call` (202 Accepted)
followed by polling `read_state` for `/request_status/<id>`; a query is a v2
`query`. ic-py does not verify certificates or query signatures (it has no BLS
code and ignores its `root_key`), so this script checks what it can see: the
root key's shape, the certified paths, and every reply.

The script makes exactly INCREMENTS successful `inc` calls and exits 0; on any
failure it prints what went wrong and exits 1. The last line of a successful
run is `py-smoke: ok increments=<n> counter=<value>`.
"""

import contextlib
import io
import signal
import sys
import time

import cbor2
import httpx
import leb128  # a dependency of ic-py
from ic.agent import Agent, sign_request
from ic.candid import Types, decode, encode
from ic.canister import Canister
from ic.certificate import lookup
from ic.client import Client
from ic.identity import Identity
from ic.principal import Principal

INCREMENTS = 4
TIMEOUT_S = 120
POLL_TIMEOUT_S = 30

COUNTER_DID = """
service : {
  get : () -> (nat64) query;
  inc : () -> (nat64);
  set_certified : (blob) -> ();
  whoami : () -> (principal) query;
}
"""

BLS_DER_PREFIX = bytes.fromhex(
    "308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100"
)


class SmokeFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise SmokeFailure(what)


def log(*args):
    print("py-smoke:", *args, flush=True)


# Every HTTP request ic-py makes, as "METHOD /path -> status". ic-py sends its
# requests with the module-level httpx functions; this wrapper only observes,
# except that it stops the run at once when a request fails: ic-py ignores the
# status of a v2 call and would poll for a request that was never accepted
# until the watchdog fires.
requests = []


def _observed(method, send):
    def wrapper(url, *args, **kwargs):
        response = send(url, *args, **kwargs)
        path = httpx.URL(url).path
        requests.append(f"{method} {path} -> {response.status_code}")
        if response.status_code not in (200, 202):
            raise SmokeFailure(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response
    return wrapper


httpx.post = _observed("POST", httpx.post)
httpx.get = _observed("GET", httpx.get)


def nat64(decoded):
    """The value of a single-nat64 reply as ic-py decodes it."""
    check(isinstance(decoded, list) and len(decoded) == 1, f"unexpected reply {decoded!r}")
    value = decoded[0]["value"] if isinstance(decoded[0], dict) else decoded[0]
    check(isinstance(value, int), f"reply {decoded!r} is not a nat64")
    return value


def main(url, canister_id):
    client = Client(url=url)
    incs = 0

    # 1. The status endpoint and its root key (ic-py's Client.status prints the
    #    raw body; keep that out of the log).
    with contextlib.redirect_stdout(io.StringIO()):
        status = cbor2.loads(client.status())
    root_key = status["root_key"]
    check(len(root_key) == 133 and root_key.startswith(BLS_DER_PREFIX),
          f"root_key is not a 133-byte BLS12-381 DER key: {root_key.hex()}")
    log(f"status: replica_health_status={status.get('replica_health_status')} "
        f"root key ...{root_key.hex()[-16:]}")

    # 2. The Candid interface through ic-py's Canister class, Ed25519 sender.
    ed = Identity()  # a fresh Ed25519 key
    agent = Agent(ed, client, root_key=root_key)
    counter = Canister(agent=agent, canister_id=canister_id, candid=COUNTER_DID)
    start = nat64(counter.get())
    log(f"query get -> {start}")
    who = counter.whoami()
    check(len(who) == 1 and who[0].to_str() == ed.sender().to_str(),
          f"whoami is {who!r}, expected {ed.sender().to_str()}")
    log(f"query whoami -> {who[0].to_str()}")

    v = nat64(counter.inc())
    incs += 1
    check(v == start + 1, f"inc returned {v}, expected {start + 1}")
    log(f"update inc (Ed25519, v2 call + read_state polling) -> {v}")

    # 3. secp256k1 sender through the agent's raw API.
    k1 = Agent(Identity(type="secp256k1"), client, root_key=root_key)
    v = nat64(k1.update_raw(canister_id, "inc", encode([]), [Types.Nat64], timeout=POLL_TIMEOUT_S))
    incs += 1
    check(v == start + 2, f"inc returned {v}, expected {start + 2}")
    log(f"update inc (secp256k1, v2 call + read_state polling) -> {v}")

    # 4. The same steps ic-py's update_raw takes, one by one, so the request id
    #    is at hand: sign, v2 call, poll read_state, then read the status again.
    ed2 = Identity()
    a2 = Agent(ed2, client, root_key=root_key)
    req = {
        "request_type": "call",
        "sender": ed2.sender().bytes,
        "canister_id": Principal.from_str(canister_id).bytes,
        "method_name": "inc",
        "arg": encode([]),
        "ingress_expiry": a2.get_expiry_date(),
    }
    req_id, envelope = sign_request(req, ed2)
    a2.call_endpoint(canister_id, req_id, envelope)
    status, reply = a2.poll(canister_id, req_id, delay=0.05, timeout=POLL_TIMEOUT_S)
    check(status == "replied", f"request {req_id.hex()} ended as {status!r}")
    v = nat64(decode(reply, [Types.Nat64]))
    incs += 1
    check(v == start + 3, f"inc returned {v}, expected {start + 3}")
    log(f"update inc (Ed25519, step by step) -> {v}, request id {req_id.hex()}")

    rs_status, cert = a2.request_status_raw(canister_id, req_id)
    check(rs_status == "replied", f"read_state request_status is {rs_status!r}")
    check(lookup(["request_status", req_id, "reply"], cert) == reply, "certified reply differs")
    check(isinstance(cert.get("signature"), bytes) and len(cert["signature"]) == 48,
          "certificate signature is not a 48-byte BLS signature")
    cid = Principal.from_str(canister_id).bytes
    cert = a2.read_state_raw(canister_id, [
        [b"time"],
        [b"canister", cid, b"module_hash"],
        [b"canister", cid, b"controllers"],
    ])
    t = lookup([b"time"], cert)
    check(t is not None, "no /time in the certificate")
    t_ns = leb128.u.decode(t)
    check(abs(t_ns / 1e9 - time.time()) < 60, f"certified time {t_ns} is not now")
    module_hash = lookup([b"canister", cid, b"module_hash"], cert)
    check(isinstance(module_hash, bytes) and len(module_hash) == 32, "module_hash is not 32 bytes")
    controllers = cbor2.loads(lookup([b"canister", cid, b"controllers"], cert))
    check(isinstance(controllers, (list, tuple)) and len(controllers) >= 1, "no controllers certified")
    log(f"read_state: request_status replied, time {t_ns}, module_hash {module_hash.hex()[:16]}..., "
        f"{len(controllers)} controller(s) (certificate not verified: ic-py cannot)")

    # 5. Anonymous sender (ic-py sends sender_pubkey and sender_sig as CBOR null).
    anon = Identity(anonymous=True)
    anon_counter = Canister(agent=Agent(anon, client, root_key=root_key), canister_id=canister_id,
                            candid=COUNTER_DID)
    v = nat64(anon_counter.inc())
    incs += 1
    check(v == start + 4, f"inc returned {v}, expected {start + 4}")
    who = anon_counter.whoami()
    check(len(who) == 1 and who[0].to_str() == "2vxsx-fae", f"anonymous whoami is {who!r}")
    log(f"update inc (anonymous) -> {v}")

    # 6. Rejections. ic-py raises for a rejected update and returns the reject
    #    message (a str) for a rejected query.
    try:
        agent.update_raw(canister_id, "set_certified", encode([{"type": Types.Vec(Types.Nat8), "value": [0] * 33}]),
                         timeout=POLL_TIMEOUT_S)
        raise SmokeFailure("set_certified with 33 bytes succeeded, expected a reject")
    except SmokeFailure:
        raise
    except Exception as e:  # ic-py raises a plain Exception('Rejected: ...')
        check(str(e).startswith("Rejected: "), f"unexpected error {e!r}")
        log(f"update set_certified(33 bytes) -> {str(e).splitlines()[0]}")
    rej = agent.query_raw(canister_id, "no_such_method", encode([]))
    check(isinstance(rej, str) and "no_such_method" in rej, f"query of a missing method returned {rej!r}")
    log(f"query no_such_method -> rejected: {rej.splitlines()[0]}")

    # 7. The counter at the end.
    end = nat64(anon_counter.get())
    check(end == start + incs, f"counter is {end}, expected {start + incs}")
    check(incs == INCREMENTS, f"made {incs} increments, expected {INCREMENTS}")
    log(f"query get -> {end}")

    log("HTTP requests made:")
    counts = {}
    for r in requests:
        counts[r] = counts.get(r, 0) + 1
    for r, n in counts.items():
        log(f"  {n} x {r}")
    check(any(r.startswith("POST /api/v2/canister/") and r.endswith("/call -> 202") for r in requests),
          "no v2 call answered 202")
    check(any(r.endswith("/read_state -> 200") for r in requests), "no v2 read_state answered 200")
    check(any(r.endswith("/query -> 200") for r in requests), "no v2 query answered 200")
    check(all(r.startswith("GET /api/v2/status") or r.startswith("POST /api/v2/canister/") for r in requests),
          "ic-py used an endpoint other than v2")
    return incs, end


def on_timeout(signum, frame):
    print(f"py-smoke: FAILED: no result after {TIMEOUT_S} s", file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: python smoke.py <url> <canister_id>", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGALRM, on_timeout)
    signal.alarm(TIMEOUT_S)
    try:
        incs, end = main(sys.argv[1].rstrip("/"), sys.argv[2])
    except SmokeFailure as e:
        print(f"py-smoke: FAILED: {e}", file=sys.stderr, flush=True)
        print("py-smoke: HTTP requests so far:\n  " + "\n  ".join(requests), file=sys.stderr)
        sys.exit(1)
    except Exception:
        import traceback

        print("py-smoke: FAILED with an exception:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    log(f"ok increments={incs} counter={end}")

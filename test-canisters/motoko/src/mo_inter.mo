// mo_inter: a Motoko actor that keeps a `Map` in orthogonally persistent
// memory and calls other canisters (e.g. the Rust `counter`'s `inc`).
import Map "mo:core/Map";
import Text "mo:core/Text";
import Error "mo:core/Error";
import Principal "mo:core/Principal";

persistent actor {
  let entries = Map.empty<Text, Nat>();
  var callsMade : Nat = 0;

  // The Rust `counter` canister's interface (the part used here).
  type Counter = actor {
    inc : () -> async Nat64;
    get : shared query () -> async Nat64;
  };

  public func put(key : Text, value : Nat) : async () {
    Map.add(entries, Text.compare, key, value);
  };

  public query func lookup(key : Text) : async ?Nat {
    Map.get(entries, Text.compare, key);
  };

  public query func size() : async Nat {
    Map.size(entries);
  };

  // Calls `inc` on `other` (a Rust `counter`) and returns its reply.
  public func call_counter(other : Principal) : async Nat64 {
    let counter : Counter = actor (Principal.toText(other));
    let value = await counter.inc();
    callsMade += 1;
    value;
  };

  // Like `call_counter`, but catches a reject and returns its message.
  public func try_call_counter(other : Principal) : async { #ok : Nat64; #err : Text } {
    let counter : Counter = actor (Principal.toText(other));
    try {
      let value = await counter.inc();
      callsMade += 1;
      #ok value;
    } catch (e) {
      #err(Error.message(e));
    };
  };

  public query func calls_made() : async Nat {
    callsMade;
  };

  public shared query ({ caller }) func whoami() : async Principal {
    caller;
  };
};

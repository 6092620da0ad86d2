// mo_counter: the Motoko twin of the Rust `counter`. A `persistent actor`
// (enhanced orthogonal persistence): `count` survives upgrades, the
// `transient` heap counter is reset by them.
persistent actor {
  var count : Nat = 0;
  transient var transientCount : Nat = 0;

  public func inc() : async Nat {
    count += 1;
    count;
  };

  public query func get() : async Nat {
    count;
  };

  public func set(value : Nat) : async () {
    count := value;
  };

  public func bump_transient() : async Nat {
    transientCount += 1;
    transientCount;
  };

  public query func transient_count() : async Nat {
    transientCount;
  };

  public shared query ({ caller }) func whoami() : async Principal {
    caller;
  };
};

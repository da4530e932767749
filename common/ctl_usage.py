"""pykronctl's usage: the docopt grammar, a line on what each command does, and its exit codes
(the one list of them: the code returns these, and --help prints them). Kept apart from
common/ctl.py, which carries the commands out."""

OK, FAILED, USAGE_ERROR, NOT_FOUND, UNAVAILABLE, DENIED = 0, 1, 2, 3, 4, 5
EXIT_CODES = (
    (OK, "ok"),
    (FAILED, "the job failed (run --wait, tail)"),
    (USAGE_ERROR, "usage or bad input (a job refused, a leave not confirmed, an import with a failure)"),
    (NOT_FOUND, "not found (a job, an execution, a setting, a token, a policy)"),
    (UNAVAILABLE, "cluster unavailable (no reply, no leader, new submissions paused, disk full)"),
    (DENIED, "refused by the ACL (no token, an unknown or expired one, or one not allowed this)"),
)

USAGE = """pykronctl: manage a pykron cluster.

Usage:
  pykronctl [options] status
  pykronctl [options] jobs [--tag K=V]...
  pykronctl [options] job NAME [--secrets]
  pykronctl [options] apply FILE...
  pykronctl [options] delete NAME
  pykronctl [options] run NAME [--wait]
  pykronctl [options] kill NAME [ID]
  pykronctl [options] toggle NAME
  pykronctl [options] executions NAME [--limit N]
  pykronctl [options] tail NAME [--wait-start S]
  pykronctl [options] busy
  pykronctl [options] members
  pykronctl [options] leader
  pykronctl [options] leave [--yes]
  pykronctl [options] pause
  pykronctl [options] unpause
  pykronctl [options] settings [KEY [VALUE]]
  pykronctl [options] export FILE
  pykronctl [options] import FILE
  pykronctl [options] keyring (--list | --install=KEY | --use=KEY | --remove=KEY)
  pykronctl [options] keygen
  pykronctl [options] keys list
  pykronctl [options] keys accept NAME [--public KEY] [--kind KIND]
  pykronctl [options] keys reject NAME [--public KEY]
  pykronctl [options] keys add NAME KEY
  pykronctl [options] keys new FILE
  pykronctl [options] keys show
  pykronctl [options] raft list-peers
  pykronctl [options] raft remove-peer ID
  pykronctl [options] raft transfer-leader [ID]
  pykronctl [options] schedule EXPR...
  pykronctl [options] snapshot save FILE
  pykronctl [options] snapshot inspect FILE
  pykronctl [options] snapshot restore FILE [--force]
  pykronctl [options] audit [--limit N] [--before SEQ]
  pykronctl [options] acl bootstrap
  pykronctl [options] acl token create [--policy NAME]... [--type TYPE] [--description TEXT] [--ttl TTL]
  pykronctl [options] acl token list
  pykronctl [options] acl token delete ACCESSOR
  pykronctl [options] acl policy apply NAME FILE [--description TEXT]
  pykronctl [options] acl policy list
  pykronctl [options] acl policy delete NAME
  pykronctl (-h | --help)

Commands:
  status                  This node, its role and version, the leader and the members.
  jobs                    The jobs: schedule, status, last success, next run, counts.
  job                     One job, every field.
  apply                   Create or replace the jobs in FILEs (all read before any is sent).
  delete                  Delete a job.
  run                     Run a job now; --wait follows its output and exits with its outcome.
  kill                    Stop a job's running executions (or the one with ID).
  toggle                  Disable an enabled job, or enable a disabled one.
  executions              A job's newest executions, with their output.
  tail                    Follow the output of a job's current or next run.
  busy                    The executions running now, on every node.
  members                 The cluster's nodes as gossip sees them: address, role, status, tags.
  leader                  The Raft leader: its name, term and address.
  leave                   Make the server this talks to leave the cluster (asks first).
  pause                   Refuse new job submissions cluster-wide (scheduled jobs still run).
  unpause                 Take new job submissions again.
  settings                The cluster's replicated settings; KEY reads one, KEY VALUE sets it.
  export                  Write every job to FILE (Dkron's backup format).
  import                  Create or replace the jobs in FILE, parents first (Dkron's restore).
  keyring                 List or rotate the gossip keys every member holds.
  keygen                  Print a new gossip key.
  keys list               The CURVE keys the cluster knows: nodes and clients, by status.
  keys accept             Accept a node's (or a client's) key, so it may connect.
  keys reject             Reject a key: its node or client is cut off.
  keys add                Accept a client's public KEY under NAME.
  keys new                Make a client key file for pykronctl on another host.
  keys show               This node's public key and the address clients dial.
  raft list-peers         The Raft servers: role, leader, address, how far each has replicated.
  raft remove-peer        Remove a server from the Raft configuration.
  raft transfer-leader    Hand leadership to ID (or to the most caught-up server).
  schedule                Read a schedule back: in words, and its next fire times (no cluster).
  snapshot save           Save a consistent copy of the replicated state to FILE.
  snapshot inspect        Check a saved FILE's checksum and count what it holds (no cluster).
  snapshot restore        Load a saved FILE into a fresh cluster (--force: replace one holding jobs).
  audit                   Who wrote which job, setting, key, policy or token, newest first.
  acl bootstrap           Turn the ACL on and print the management token (once per cluster).
  acl token create        Make a token with policies, a type and a time to live.
  acl token list          The tokens (their secrets are never shown again).
  acl token delete        Delete a token by its accessor id.
  acl policy apply        Create or replace policy NAME from FILE (Dkron's rules).
  acl policy list         The policies.
  acl policy delete       Delete a policy.

Options:
  -s ADDR, --server ADDR  Server: HOST, HOST:PORT (its raft client port) or a tcp:// endpoint
                          [default: $PYKRON_SERVER, else this host's node].
  --key FILE              Client key file over tcp (`keys new FILE`) [default: $PYKRON_KEY].
  -t SECRET, --token SECRET  An ACL token's secret: calls go over tcp with the key it derives
                          [default: $PYKRON_TOKEN].
  --server-key KEY        The server's public key (`keys show` on it) [default: $PYKRON_SERVER_KEY].
  --json                  Print JSON (Dkron's shapes) instead of tables; output as JSON lines.
  --stale                 Read the server's local copy without asking the leader.
  --tag K=V               jobs: only those targeting nodes with tag K=V (repeatable).
  --limit N               Most executions to show [default: 20].
  --wait                  Follow the run's output live; exit with its outcome.
  --wait-start S          How long tail waits for a run to start [default: 60].
  --timeout-ms MS         How long to wait for each reply [default: 5000].
  --list                  keyring: the gossip keys every member holds, and how many use each.
  --install=KEY           keyring: add KEY on every member (rotation step 1 of 3).
  --use=KEY               keyring: seal with KEY on every member (step 2; it must be installed).
  --remove=KEY            keyring: drop KEY on every member (step 3; not the one in use).
  --public KEY            keys: the public key meant, when a name has several.
  --kind KIND             keys accept: server, agent or client, for a key the cluster has not seen.
  --tz ZONE               schedule: the job's IANA time zone (UTC when not given).
  --count N               schedule: how many fire times to show, 1 to 100 [default: 5].
  --name NAME             schedule: the job's name, which ~ hashes.
  --before SEQ            audit: only entries older than this one [default: 0].
  --secrets               job: show executor_config's secret values (a management token, or this node).
  --force                 snapshot restore: replace the state of a cluster that holds jobs.
  --policy NAME           acl token create: a policy of the token (repeatable).
  --type TYPE             acl token create: client or management [default: client].
  --description TEXT      acl: what the token or policy is for.
  --ttl TTL               acl token create: expire after this long (90s, 30m, 12h, 7d).
  -y, --yes               leave: go without asking (needed when stdin is not a terminal).

Exit codes:
""" + "".join(f"  {code}  {meaning}\n" for code, meaning in EXIT_CODES) + """
FILE is JSON or YAML holding one job or a list (Dkron's restore format); "-" is stdin or stdout.
`schedule` reads a schedule back (in words, and its next fire times) here, without a cluster:
pykronctl schedule '*/15 * * * *' --tz America/New_York
"""

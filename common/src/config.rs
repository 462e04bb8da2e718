//! Configuration: Ozone's `ozone-site.xml` with Ozone's key names, overridden by environment
//! variables `OZONE-SITE.XML_<key>=<value>` (as in Ozone's docker images) and by `--set`.
//!
//! Every key Ozone-RS reads is listed once, in the `keys!` table below, with its default and
//! meaning. The table makes [`KEYS`] (for `ozone getconf` and the unknown-key warning) and one
//! typed constant per key in [`keys`] (`keys::OZONE_OM_ADDRESS` for `ozone.om.address`: the name
//! upper-cased, `.` and `-` made `_`, `<` and `>` dropped). The getters of [`OzoneConfig`] take
//! those constants, so a misspelt key does not compile. A key with `<placeholder>` segments is a
//! [`KeyTemplate`]: `keys::OZONE_OM_NODES_SERVICEID.with([&service])` is the key of one service.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One configuration key: its name, default value and what it means.
pub struct KeyDef {
    pub name: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// A listed configuration key (a constant of [`keys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(&'static str);

impl Key {
    /// The key's name, e.g. `ozone.om.address`.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

/// A listed key with `N` `<placeholder>` segments, e.g. `ozone.om.nodes.<serviceId>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyTemplate<const N: usize>(&'static str);

impl<const N: usize> KeyTemplate<N> {
    /// The template's name, with its placeholders.
    pub const fn name(self) -> &'static str {
        self.0
    }

    /// The key with the placeholders replaced, in order, by `parts`.
    pub fn with(self, parts: [&dyn fmt::Display; N]) -> KeyBuf {
        let mut parts = parts.into_iter();
        let name = self
            .0
            .split('.')
            .map(|seg| {
                if seg.starts_with('<') {
                    parts.next().map(ToString::to_string).unwrap_or_default()
                } else {
                    seg.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(".");
        KeyBuf(name)
    }
}

/// A key made at run time: from a [`KeyTemplate`], or a name given by a user
/// ([`KeyBuf::unchecked`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyBuf(String);

impl KeyBuf {
    /// A key named at run time (`ozone getconf confKey`, `--set`, an `ozone-site.xml`); it may be
    /// unlisted, which [`is_listed`] tells.
    pub fn unchecked(name: impl Into<String>) -> Self {
        KeyBuf(name.into())
    }
}

/// What the getters of [`OzoneConfig`] accept: a [`Key`], a [`KeyBuf`], or a reference to one.
pub trait ConfKey: fmt::Display {
    fn key_name(&self) -> &str;
}

impl ConfKey for Key {
    fn key_name(&self) -> &str {
        self.0
    }
}

impl ConfKey for KeyBuf {
    fn key_name(&self) -> &str {
        &self.0
    }
}

impl<T: ConfKey + ?Sized> ConfKey for &T {
    fn key_name(&self) -> &str {
        (**self).key_name()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for KeyBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const N: usize> fmt::Display for KeyTemplate<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl From<Key> for String {
    fn from(k: Key) -> String {
        k.0.to_string()
    }
}

impl From<KeyBuf> for String {
    fn from(k: KeyBuf) -> String {
        k.0
    }
}

/// The constant of one table entry: a [`Key`], or a [`KeyTemplate`] when it has `[N]`.
macro_rules! key_const {
    ($ident:ident, $name:literal, $doc:literal) => {
        #[doc = concat!("`", $name, "`: ", $doc)]
        pub const $ident: Key = Key($name);
    };
    ($ident:ident [$n:literal], $name:literal, $doc:literal) => {
        #[doc = concat!("`", $name, "`: ", $doc)]
        pub const $ident: KeyTemplate<$n> = KeyTemplate($name);
    };
}

macro_rules! keys {
    ($($ident:ident $([$n:literal])? = $name:literal = $default:literal : $doc:literal;)*) => {
        /// Every configuration key, with its default and meaning.
        pub const KEYS: &[KeyDef] = &[$(KeyDef { name: $name, default: $default, doc: $doc }),*];

        /// One constant per configuration key (see the module doc for the naming).
        pub mod keys {
            use super::{Key, KeyTemplate};
            $(key_const!($ident $([$n])?, $name, $doc);)*

            /// Each constant's identifier with its key name (checked by a unit test).
            #[cfg(test)]
            pub(super) const IDENTS: &[(&str, &str)] = &[$((stringify!($ident), $name)),*];
        }
    };
}

keys! {
    OZONE_METADATA_DIRS = "ozone.metadata.dirs" = "./data/metadata" : "Directory for SCM and OM databases when the role-specific dir is unset.";
    OZONE_OM_DB_DIRS = "ozone.om.db.dirs" = "" : "OM database directory (default: ozone.metadata.dirs).";
    OZONE_SCM_DB_DIRS = "ozone.scm.db.dirs" = "" : "SCM database directory (default: ozone.metadata.dirs).";
    HDDS_DATANODE_DIR = "hdds.datanode.dir" = "./data/hdds" : "Datanode container directory; {hostname} in it is replaced by the advertised host name (one directory per datanode on a shared volume).";
    OZONE_OM_ADDRESS = "ozone.om.address" = "127.0.0.1:9862" : "OM gRPC address (host:port); clients connect here, OM binds its port.";
    OZONE_OM_HTTP_ADDRESS = "ozone.om.http-address" = "0.0.0.0:9874" : "OM http address (/prom, status page).";
    OZONE_SCM_NAMES = "ozone.scm.names" = "127.0.0.1" : "SCM host, used when the SCM address keys are unset.";
    OZONE_SCM_CLIENT_ADDRESS = "ozone.scm.client.address" = "" : "SCM client gRPC address used by OM and admin tools (default: <ozone.scm.names>:9860).";
    OZONE_SCM_DATANODE_ADDRESS = "ozone.scm.datanode.address" = "" : "SCM datanode gRPC address used by datanodes (default: <ozone.scm.names>:9861).";
    OZONE_SCM_HTTP_ADDRESS = "ozone.scm.http-address" = "0.0.0.0:9876" : "SCM http address.";
    HDDS_DATANODE_HOSTNAME = "hdds.datanode.hostname" = "" : "Host name or IP a datanode advertises to SCM and clients (default: the local IP address it reaches SCM from, or its DNS name; see hdds.datanode.use.datanode.hostname).";
    HDDS_DATANODE_USE_DATANODE_HOSTNAME = "hdds.datanode.use.datanode.hostname" = "false" : "With hdds.datanode.hostname unset, advertise the DNS name (reverse lookup) of the address SCM is reached from instead of the address: in docker-compose the container name, stable across down/up.";
    HDDS_CONTAINER_IPC_PORT = "hdds.container.ipc.port" = "9859" : "Datanode gRPC port (0 picks a free port).";
    HDDS_DATANODE_HTTP_ADDRESS = "hdds.datanode.http-address" = "0.0.0.0:9882" : "Datanode http address.";
    OZONE_S3G_HTTP_ADDRESS = "ozone.s3g.http-address" = "0.0.0.0:9878" : "S3 gateway address.";
    OZONE_S3G_HTTPS_ADDRESS = "ozone.s3g.https-address" = "" : "S3 gateway HTTPS address (Ozone's port is 9879); empty: no HTTPS. Needs ozone.s3g.https.cert.file and ozone.s3g.https.key.file. With ozone.s3g.http-address set too, the gateway serves both.";
    OZONE_S3G_HTTPS_CERT_FILE = "ozone.s3g.https.cert.file" = "" : "PEM file of the S3 gateway's HTTPS certificate chain (the server's certificate first).";
    OZONE_S3G_HTTPS_KEY_FILE = "ozone.s3g.https.key.file" = "" : "PEM file of the private key of the S3 gateway's HTTPS certificate (PKCS#8, PKCS#1 or SEC1).";
    OZONE_S3G_WEBADMIN_HTTP_ADDRESS = "ozone.s3g.webadmin.http-address" = "0.0.0.0:19878" : "S3 gateway web admin address (/prom, status page).";
    OZONE_S3G_VOLUME_NAME = "ozone.s3g.volume.name" = "s3v" : "Volume that holds the S3 buckets.";
    OZONE_SECURITY_ENABLED = "ozone.security.enabled" = "false" : "Security: the S3 gateway verifies AWS SigV4 signatures against per-user secrets kept by OM, and bucket owners and ACLs decide who may do what. Off: any access key is accepted and names the user.";
    OZONE_OM_ADMIN_SECRET_FILE = "ozone.om.admin.secret.file" = "" : "File holding the admin credential that `ozone s3 getsecret|revokesecret` must present (the CLI reads it, or $OZONE_ADMIN_SECRET; OM reads it at start and keeps only an HMAC of it under the OM secret key). Empty: <OM db dir>/admin.secret, created (mode 0600) by OM at start when security is on.";
    OZONE_OM_SECRET_KEY_FILE = "ozone.om.secret.key.file" = "" : "File holding the OM secret key (64 hex digits, AES-256) that seals S3 secrets in om.db, the raft log and snapshots, and keys the admin credential's verifier; only OMs read it, and every OM of an HA service must be given the same file. Empty: <OM db dir>/om.key, created (mode 0600) by OM at start when security is on.";
    OZONE_SECURITY_BOOTSTRAP_SECRET_FILE = "ozone.security.bootstrap.secret.file" = "" : "Security on: file holding the cluster's bootstrap secret, with which a node without a certificate asks SCM for one (mutual TLS on every internal port). The primordial SCM creates it (mode 0600) at its first start; every other node must be given a copy. Empty: <ozone.metadata.dirs>/bootstrap.secret.";
    OZONE_SCM_PRIMORDIAL_NODE_ID = "ozone.scm.primordial.node.id" = "" : "SCM HA with security on: the SCM that creates the cluster's root CA at its first start (the others copy it from an SCM that has it). Empty: the first of ozone.scm.nodes.<serviceId>.";
    HDDS_X509_DIR_NAME = "hdds.x509.dir.name" = "certs" : "Security on: directory, under a role's metadata directory, of its key, certificate and the CA certificate (SCM's CA: <SCM db dir>/ca).";
    HDDS_X509_DEFAULT_DURATION = "hdds.x509.default.duration" = "365d" : "Security on: how long a node certificate SCM issues is valid.";
    HDDS_X509_RENEW_GRACE_DURATION = "hdds.x509.renew.grace.duration" = "28d" : "Security on: a node renews its certificate this long before it expires (checked at start and then periodically).";
    HDDS_X509_MAX_DURATION = "hdds.x509.max.duration" = "1825d" : "Security on: how long the root CA certificate SCM creates is valid.";
    OZONE_SECURITY_CA_FILE = "ozone.security.ca.file" = "" : "Security on: the CA certificate (PEM) that command-line tools trust when they call OM and SCM. Empty: <ozone.metadata.dirs>/ca.pem, written by the primordial SCM.";
    OZONE_S3G_REGION = "ozone.s3g.region" = "us-east-1" : "The region the S3 gateway serves: with security on a SigV4 credential scope must name it (else 400 AuthorizationHeaderMalformed, as AWS answers a request signed for another region); HeadBucket answers it in x-amz-bucket-region.";
    HDDS_BLOCK_TOKEN_ENABLED = "hdds.block.token.enabled" = "true" : "With ozone.security.enabled: OM signs a block token into every block location it hands out and datanodes serve and accept chunks and blocks only with a valid one. No effect with security off.";
    HDDS_CONTAINER_TOKEN_ENABLED = "hdds.container.token.enabled" = "true" : "With ozone.security.enabled: SCM signs a container token into every replicate command and a datanode copies a container out only to a caller presenting a valid one. No effect with security off.";
    HDDS_BLOCK_TOKEN_EXPIRY_TIME = "hdds.block.token.expiry.time" = "1d" : "How long a block (or container) token is valid after it is signed.";
    HDDS_SECRET_KEY_ROTATE_DURATION = "hdds.secret.key.rotate.duration" = "1d" : "The SCM leader makes a new current secret key (for signing tokens) this often.";
    HDDS_SECRET_KEY_EXPIRY_DURATION = "hdds.secret.key.expiry.duration" = "7d" : "A secret key verifies tokens for this long after it was made, then it is dropped. Must exceed the rotation duration plus the token expiry time.";
    HDDS_SECRET_KEY_ROTATE_CHECK_DURATION = "hdds.secret.key.rotate.check.duration" = "10m" : "How often the SCM leader checks whether the current secret key is due for rotation.";
    OZONE_S3G_DOMAIN_NAME = "ozone.s3g.domain.name" = "" : "Comma-separated domains for virtual-host-style bucket addressing.";
    OZONE_S3G_LIST_MAX_KEYS_LIMIT = "ozone.s3g.list.max.keys.limit" = "1000" : "Largest page ListObjects returns.";
    OZONE_S3G_CLIENT_BUFFER_SIZE = "ozone.s3g.client.buffer.size" = "1MB" : "Bytes of a request body the S3 gateway gathers before sending them to the datanodes as one piece (bounds memory per upload).";
    OZONE_S3G_WORKERS = "ozone.s3g.workers" = "0" : "S3 gateway worker threads (0: one per core).";
    OZONE_SERVER_DEFAULT_REPLICATION = "ozone.server.default.replication" = "3" : "Replication factor of new keys: 1 or 3.";
    OZONE_SCM_BLOCK_SIZE = "ozone.scm.block.size" = "256MB" : "Largest block; bigger keys span several blocks.";
    OZONE_SCM_CHUNK_SIZE = "ozone.scm.chunk.size" = "4MB" : "Chunk size: the unit of a datanode write.";
    OZONE_SCM_CONTAINER_SIZE = "ozone.scm.container.size" = "5GB" : "Container size: SCM hands out a block in a container only while its reported used bytes plus the blocks in flight plus the new block fit in it.";
    OZONE_SCM_CONTAINER_CLOSE_THRESHOLD = "ozone.scm.container.close.threshold" = "0.9" : "SCM closes a container once the bytes its replicas report as used reach this fraction of ozone.scm.container.size (0 < value <= 1).";
    OZONE_CLIENT_BYTES_PER_CHECKSUM = "ozone.client.bytes.per.checksum" = "16KB" : "Bytes covered by one CRC32C checksum.";
    OZONE_SCM_PIPELINE_OWNER_CONTAINER_COUNT = "ozone.scm.pipeline.owner.container.count" = "3" : "Most open containers per pipeline; SCM fills one at a time and opens another only when no open one has room for a block.";
    OZONE_SCM_DATANODE_PIPELINE_LIMIT = "ozone.scm.datanode.pipeline.limit" = "2" : "Pipelines a datanode may belong to.";
    HDDS_SCM_SAFEMODE_MIN_DATANODE = "hdds.scm.safemode.min.datanode" = "0" : "Healthy datanodes needed before SCM allocates blocks (0: the replication factor).";
    HDDS_HEARTBEAT_INTERVAL = "hdds.heartbeat.interval" = "3s" : "Datanode heartbeat interval.";
    HDDS_CONTAINER_REPORT_INTERVAL = "hdds.container.report.interval" = "60s" : "How often a datanode sends a full container report; heartbeats in between carry only the replicas changed or removed since the last one SCM answered.";
    OZONE_SCM_STALE_NODE_INTERVAL = "ozone.scm.stale.node.interval" = "30s" : "A datanode silent this long is STALE.";
    OZONE_SCM_DEAD_NODE_INTERVAL = "ozone.scm.dead.node.interval" = "60s" : "A datanode silent this long is DEAD.";
    OZONE_KEY_PREALLOCATION_MAX_BLOCKS = "ozone.key.preallocation.max.blocks" = "1" : "Most blocks OM allocates when a key is opened (fewer when the size hint needs fewer); the writer asks for each further block as its bytes arrive, so an abandoned write holds at most this many unused blocks. Ozone's default is 64.";
    OZONE_SCM_SERVICE_IDS = "ozone.scm.service.ids" = "" : "SCM HA: the SCM service id (one). Empty: a single SCM at ozone.scm.client.address / ozone.scm.datanode.address.";
    OZONE_SCM_NODES_SERVICEID [1] = "ozone.scm.nodes.<serviceId>" = "" : "SCM HA: comma-separated node ids of the SCMs of the service, e.g. scm1,scm2,scm3.";
    OZONE_SCM_ADDRESS_SERVICEID_NODEID [2] = "ozone.scm.address.<serviceId>.<nodeId>" = "" : "SCM HA: client gRPC address (host:port, port 9860 when omitted) of one SCM node; OM, admin tools and the other SCMs (raft) use it.";
    OZONE_SCM_DATANODE_ADDRESS_SERVICEID_NODEID [2] = "ozone.scm.datanode.address.<serviceId>.<nodeId>" = "" : "SCM HA: datanode gRPC address of one SCM node (default: the host of ozone.scm.address.<serviceId>.<nodeId> with port 9861).";
    OZONE_SCM_HTTP_ADDRESS_SERVICEID_NODEID [2] = "ozone.scm.http-address.<serviceId>.<nodeId>" = "" : "SCM HA: http address of one SCM node (default: ozone.scm.http-address).";
    OZONE_SCM_NODE_ID = "ozone.scm.node.id" = "" : "SCM HA: which node of the service this SCM is (needed when the service lists several nodes).";
    OZONE_SCM_HA_RATIS_SNAPSHOT_THRESHOLD = "ozone.scm.ha.ratis.snapshot.threshold" = "1000" : "SCM snapshots its state after this many log entries applied since the last snapshot.";
    OZONE_SCM_HA_RATIS_LOG_PURGE_GAP = "ozone.scm.ha.ratis.log.purge.gap" = "1000" : "Log entries an SCM keeps before its latest snapshot when it purges the log.";
    OZONE_SCM_HA_RATIS_LEADER_ELECTION_TIMEOUT = "ozone.scm.ha.ratis.leader.election.timeout" = "1s" : "SCM election timeout: a follower hearing no leader for this long (randomised up to twice) starts an election; the leader heartbeats at a third of it.";
    OZONE_SCM_HA_RATIS_REQUEST_TIMEOUT = "ozone.scm.ha.ratis.request.timeout" = "5s" : "How long an SCM waits for a change of its state to commit before failing the request as unavailable.";
    OZONE_OM_SERVICE_IDS = "ozone.om.service.ids" = "" : "OM HA: the OM service id (one). Empty: a single OM at ozone.om.address.";
    OZONE_OM_NODES_SERVICEID [1] = "ozone.om.nodes.<serviceId>" = "" : "OM HA: comma-separated node ids of the OMs of the service, e.g. om1,om2,om3.";
    OZONE_OM_ADDRESS_SERVICEID_NODEID [2] = "ozone.om.address.<serviceId>.<nodeId>" = "" : "OM HA: gRPC address (host:port) of one OM node; clients and the other OMs (raft) use it.";
    OZONE_OM_NODE_ID = "ozone.om.node.id" = "" : "OM HA: which node of the service this OM is (needed when the service lists several nodes).";
    OZONE_OM_RATIS_SNAPSHOT_AUTO_TRIGGER_THRESHOLD = "ozone.om.ratis.snapshot.auto.trigger.threshold" = "400000" : "OM snapshots its state after this many log entries applied since the last snapshot (Ozone's default; a snapshot exports the whole namespace, so a low value costs writes in proportion to its size).";
    OZONE_OM_RATIS_LOG_PURGE_GAP = "ozone.om.ratis.log.purge.gap" = "1000" : "Log entries an OM keeps before its latest snapshot when it purges the log (a follower further behind catches up by snapshot).";
    OZONE_OM_RATIS_MINIMUM_TIMEOUT = "ozone.om.ratis.minimum.timeout" = "1s" : "OM election timeout: a follower hearing no leader for this long (randomised up to twice) starts an election; the leader heartbeats at a third of it.";
    OZONE_OM_RATIS_SERVER_REQUEST_TIMEOUT = "ozone.om.ratis.server.request.timeout" = "5s" : "How long an OM waits for a write to commit, or a read to confirm leadership, before answering OM_UNAVAILABLE.";
    HDDS_SCM_REPLICATION_THREAD_INTERVAL = "hdds.scm.replication.thread.interval" = "300s" : "How often SCM's ReplicationManager checks every closed container for missing, excess and unhealthy replicas.";
    HDDS_SCM_REPLICATION_EVENT_TIMEOUT = "hdds.scm.replication.event.timeout" = "12m" : "How long the ReplicationManager waits for a replication or replica deletion it asked for before asking again.";
    HDDS_DATANODE_REPLICATION_STREAMS_LIMIT = "hdds.datanode.replication.streams.limit" = "10" : "Container copies a datanode runs at once (more wait in its replication queue).";
    HDDS_CONTAINER_SCRUB_ENABLED = "hdds.container.scrub.enabled" = "true" : "Run the background scrubber that re-verifies every stored checksum on each datanode.";
    HDDS_CONTAINER_SCRUB_DATA_SCAN_INTERVAL = "hdds.container.scrub.data.scan.interval" = "7d" : "Least time between two data scans of the same container by the scrubber.";
    HDDS_CONTAINER_SCRUB_VOLUME_BYTES_PER_SECOND = "hdds.container.scrub.volume.bytes.per.second" = "5MB" : "Bytes per second the scrubber reads (rate limit of background verification).";
    OZONE_BLOCK_DELETING_SERVICE_INTERVAL = "ozone.block.deleting.service.interval" = "60s" : "How often OM hands the blocks of deleted and overwritten keys to SCM's deleted-block log.";
    OZONE_KEY_DELETING_LIMIT_PER_TASK = "ozone.key.deleting.limit.per.task" = "20000" : "Most deleted-block records OM sends to SCM in one round.";
    OZONE_OM_OPEN_KEY_EXPIRE_THRESHOLD = "ozone.om.open.key.expire.threshold" = "7d" : "An open key (a write or multipart part never committed) older than this is removed by OM's open-key cleanup and its blocks go to SCM's deleted-block log.";
    OZONE_OM_OPEN_KEY_CLEANUP_SERVICE_INTERVAL = "ozone.om.open.key.cleanup.service.interval" = "24h" : "How often the OM leader looks for open keys older than ozone.om.open.key.expire.threshold.";
    OZONE_OM_OPEN_KEY_CLEANUP_LIMIT_PER_TASK = "ozone.om.open.key.cleanup.limit.per.task" = "1000" : "Most open keys one cleanup command expires (a round repeats until none is left).";
    OZONE_OM_RATIS_SERVER_RETRYCACHE_TIMEOUT = "ozone.om.ratis.server.retrycache.timeout" = "10m" : "How long OM remembers the result of a write by its client request id (client id + call id), in its replicated database: a client retrying the write within this time, also through another OM after a leader change, gets the original result instead of applying it again.";
    HDDS_SCM_BLOCK_DELETION_PER_INTERVAL_MAX = "hdds.scm.block.deletion.per-interval.max" = "100000" : "Most blocks SCM asks one datanode to delete in one heartbeat response.";
    HDDS_SCM_BLOCK_DELETION_MISSING_CONTAINER_TIMEOUT = "hdds.scm.block.deletion.missing.container.timeout" = "1h" : "Deleted-block records of a container no datanode reports (every replica lost, or none ever written) leave SCM's deleted-block log after this long without a replica (a replica coming back later keeps those blocks).";
    OZONE_CLIENT_STREAM_BUFFER_FLUSH_SIZE = "ozone.client.stream.buffer.flush.size" = "4MB" : "A key writer (S3 gateway, `ozone sh key put`) commits the block it is writing with PutBlock on every replica after each this many bytes, and keeps only the bytes since its last commit: if the container closes or the replicas fail, the block keeps its committed length and those bytes go on in a new block. At most ozone.client.stream.buffer.max.size.";
    OZONE_CLIENT_STREAM_BUFFER_MAX_SIZE = "ozone.client.stream.buffer.max.size" = "8MB" : "Most bytes of a block a key writer holds that are not yet committed on the datanodes (its memory per upload); ozone.client.stream.buffer.flush.size must not exceed it. With room for two flushes, the writer sends on while a flush's PutBlock is answered. Any block size can be written and retried.";
    OZONE_CLIENT_CONNECTION_TIMEOUT = "ozone.client.connection.timeout" = "3s" : "Time a client of the datanodes (S3 gateway, `ozone sh`, freon) allows for opening a TCP connection to one.";
    OZONE_CLIENT_REQUEST_TIMEOUT = "ozone.client.request.timeout" = "30s" : "Longest wait for one step of a datanode call (an answer, a streamed chunk accepted, a streamed response) when no other replica can take over; then the replica counts as failed.";
    OZONE_CLIENT_READ_TIMEOUT = "ozone.client.read.timeout" = "3s" : "Wait for one step of a read on a replica (GetBlock, each ReadChunk response) while another replica could serve it; past it the read moves on to the next replica and the datanode is read last for 30 s. A hung datanode delays a read by about this much.";
    OZONE_CLIENT_WRITE_LAG_TIMEOUT = "ozone.client.write.lag.timeout" = "2s" : "How long a replica of a block write may lag behind a majority of the replicas that finished a step (chunk accepted, stream acknowledged, PutBlock); past it the replica is dropped from the block as hung and key writers ask OM for blocks without its datanode for 30 s (Ozone's ExcludeList). Slowness of all replicas alike waits up to ozone.client.request.timeout.";
}

/// Whether `key` is a listed configuration key (or matches a listed template).
pub fn is_listed(key: &str) -> bool {
    KEYS.iter().any(|k| key_matches(k.name, key))
}

/// Whether configuration key `key` is `name`, or matches it where `name` has `<placeholder>`
/// segments (each matches one non-empty dot-free segment).
pub fn key_matches(name: &str, key: &str) -> bool {
    if !name.contains('<') {
        return name == key;
    }
    let (n, k): (Vec<&str>, Vec<&str>) = (name.split('.').collect(), key.split('.').collect());
    n.len() == k.len()
        && n.iter().zip(&k).all(|(n, k)| {
            if n.starts_with('<') && n.ends_with('>') {
                !k.is_empty()
            } else {
                n == k
            }
        })
}

/// One OM of the OM service: its node id and gRPC address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OmNodeAddress {
    pub node_id: String,
    pub address: String,
}

/// One SCM of the SCM service: its node id and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScmNodeAddress {
    pub node_id: String,
    /// `ScmClientService` and the SCMs' `RaftService` (`host:port`).
    pub client: String,
    /// `ScmDatanodeService` (`host:port`).
    pub datanode: String,
    /// Status page and `/prom` (`host:port`).
    pub http: String,
}

/// Node id of the single SCM when `ozone.scm.service.ids` is unset.
pub const SINGLE_SCM_NODE_ID: &str = "scm1";

/// Node id of the single OM when `ozone.om.service.ids` is unset.
pub const SINGLE_OM_NODE_ID: &str = "om1";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Xml { path: PathBuf, message: String },
    #[error("configuration key {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("--set expects KEY=VALUE, got {0}")]
    Set(String),
    /// Keys, certificates and TLS set-up of security on (`tls`).
    #[error("{what}: {message}")]
    Tls { what: String, message: String },
}

impl ConfigError {
    /// Key `key` has a value that cannot be used.
    pub fn invalid(key: impl ConfKey, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.key_name().to_string(),
            message: message.into(),
        }
    }
}

/// Loaded configuration: values from the file and environment; defaults for the rest.
#[derive(Clone, Debug, Default)]
pub struct OzoneConfig {
    values: BTreeMap<String, String>,
}

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "OZONE-SITE.XML_";

impl OzoneConfig {
    /// Loads `<dir>/ozone-site.xml` where `dir` is `conf_dir`, else `$OZONE_CONF_DIR`; a missing
    /// file is not an error. Then applies `OZONE-SITE.XML_<key>` environment variables.
    pub fn load(conf_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let dir = conf_dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("OZONE_CONF_DIR").map(PathBuf::from));
        let mut cfg = OzoneConfig::default();
        if let Some(dir) = dir {
            let path = dir.join("ozone-site.xml");
            if path.exists() {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
                    path: path.clone(),
                    source,
                })?;
                cfg.values = parse_site_xml(&text).map_err(|message| ConfigError::Xml {
                    path: path.clone(),
                    message,
                })?;
            }
        }
        for (key, value) in env_overrides() {
            cfg.values.insert(key, value);
        }
        cfg.warn_unknown();
        Ok(cfg)
    }

    /// Warns once about every explicitly set key that is not listed in [`KEYS`].
    pub fn warn_unknown(&self) {
        for key in self.values.keys() {
            if !is_listed(key) {
                tracing::warn!(key = %key, "unknown configuration key (ignored)");
            }
        }
    }

    /// Sets a key (overriding file and environment).
    pub fn set(&mut self, key: impl ConfKey, value: impl Into<String>) -> &mut Self {
        self.values.insert(key.key_name().to_string(), value.into());
        self
    }

    /// Applies `--set KEY=VALUE` arguments (see [`parse_set`]) over what was loaded, warning
    /// about unlisted keys.
    pub fn apply_sets(&mut self, sets: &[String]) -> Result<&mut Self, ConfigError> {
        for kv in sets {
            let (key, value) = parse_set(kv)?;
            if !is_listed(key.key_name()) {
                tracing::warn!(key = %key, "unknown configuration key (ignored)");
            }
            self.set(key, value);
        }
        Ok(self)
    }

    /// The value of `key`, or its default. An unlisted key yields "".
    pub fn get(&self, key: impl ConfKey) -> String {
        let key = key.key_name();
        if let Some(v) = self.values.get(key) {
            return v.trim().to_string();
        }
        KEYS.iter()
            .find(|k| k.name == key)
            .map(|k| k.default.to_string())
            .unwrap_or_default()
    }

    /// The value of `key` when set explicitly or with a non-empty default.
    pub fn get_opt(&self, key: impl ConfKey) -> Option<String> {
        let v = self.get(key);
        (!v.is_empty()).then_some(v)
    }

    pub fn get_bool(&self, key: impl ConfKey) -> Result<bool, ConfigError> {
        match self.get(&key).to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" | "" => Ok(false),
            other => Err(invalid(
                key,
                format!("expected true or false, got {other:?}"),
            )),
        }
    }

    pub fn get_u64(&self, key: impl ConfKey) -> Result<u64, ConfigError> {
        let v = self.get(&key);
        v.parse()
            .map_err(|_| invalid(key, format!("expected a number, got {v:?}")))
    }

    /// A size such as `256MB`, `4MB`, `16KB`, `5GB` (binary units, as Ozone reads them) or bytes.
    pub fn get_bytes(&self, key: impl ConfKey) -> Result<u64, ConfigError> {
        let v = self.get(&key);
        parse_bytes(&v).ok_or_else(|| invalid(key, format!("expected a size like 4MB, got {v:?}")))
    }

    /// A duration such as `3s`, `500ms`, `5m`, `1h`; a bare number is milliseconds.
    pub fn get_duration(&self, key: impl ConfKey) -> Result<Duration, ConfigError> {
        let v = self.get(&key);
        parse_duration(&v)
            .ok_or_else(|| invalid(key, format!("expected a duration like 3s, got {v:?}")))
    }

    /// SCM client address (`host:port`).
    pub fn scm_client_address(&self) -> String {
        self.get_opt(keys::OZONE_SCM_CLIENT_ADDRESS)
            .unwrap_or_else(|| format!("{}:9860", first_host(&self.get(keys::OZONE_SCM_NAMES))))
    }

    /// SCM datanode-protocol address (`host:port`).
    pub fn scm_datanode_address(&self) -> String {
        self.get_opt(keys::OZONE_SCM_DATANODE_ADDRESS)
            .unwrap_or_else(|| format!("{}:9861", first_host(&self.get(keys::OZONE_SCM_NAMES))))
    }

    /// The SCMs of the SCM service: `ozone.scm.service.ids` (one id), `ozone.scm.nodes.<id>`
    /// and `ozone.scm.address.<id>.<node>` (with the optional `ozone.scm.datanode.address.<id>.<node>`
    /// and `ozone.scm.http-address.<id>.<node>`); without a service id, one SCM (`scm1`) at
    /// [`Self::scm_client_address`] and [`Self::scm_datanode_address`].
    pub fn scm_nodes(&self) -> Result<Vec<ScmNodeAddress>, ConfigError> {
        let Some(ids) = self.get_opt(keys::OZONE_SCM_SERVICE_IDS) else {
            return Ok(vec![ScmNodeAddress {
                node_id: SINGLE_SCM_NODE_ID.to_string(),
                client: self.scm_client_address(),
                datanode: self.scm_datanode_address(),
                http: self.get(keys::OZONE_SCM_HTTP_ADDRESS),
            }]);
        };
        let (sid, listed) = self.service_nodes(
            "SCM",
            &ids,
            keys::OZONE_SCM_SERVICE_IDS,
            keys::OZONE_SCM_NODES_SERVICEID,
            keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID,
        )?;
        let mut out: Vec<ScmNodeAddress> = Vec::new();
        for (nid, address) in listed {
            let nid = nid.as_str();
            let host = address
                .rsplit_once(':')
                .map_or(address.as_str(), |(h, _)| h)
                .to_string();
            let client = if address.contains(':') {
                address.clone()
            } else {
                format!("{address}:9860")
            };
            let datanode = self
                .get_opt(keys::OZONE_SCM_DATANODE_ADDRESS_SERVICEID_NODEID.with([&sid, &nid]))
                .unwrap_or_else(|| format!("{host}:9861"));
            let http = self
                .get_opt(keys::OZONE_SCM_HTTP_ADDRESS_SERVICEID_NODEID.with([&sid, &nid]))
                .unwrap_or_else(|| self.get(keys::OZONE_SCM_HTTP_ADDRESS));
            out.push(ScmNodeAddress {
                node_id: nid.to_string(),
                client,
                datanode,
                http,
            });
        }
        Ok(out)
    }

    /// Every SCM client gRPC address, for OM and admin tools (see [`Self::scm_nodes`]).
    pub fn scm_client_addresses(&self) -> Vec<String> {
        match self.scm_nodes() {
            Ok(nodes) => nodes.into_iter().map(|n| n.client).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "invalid SCM service configuration; using ozone.scm.client.address");
                vec![self.scm_client_address()]
            }
        }
    }

    /// Every SCM datanode gRPC address, for datanodes (see [`Self::scm_nodes`]).
    pub fn scm_datanode_addresses(&self) -> Vec<String> {
        match self.scm_nodes() {
            Ok(nodes) => nodes.into_iter().map(|n| n.datanode).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "invalid SCM service configuration; using ozone.scm.datanode.address");
                vec![self.scm_datanode_address()]
            }
        }
    }

    /// The OMs of the OM service: `ozone.om.service.ids` (one id), `ozone.om.nodes.<id>` and
    /// `ozone.om.address.<id>.<node>`; without a service id, one OM (`om1`) at `ozone.om.address`.
    pub fn om_nodes(&self) -> Result<Vec<OmNodeAddress>, ConfigError> {
        let Some(ids) = self.get_opt(keys::OZONE_OM_SERVICE_IDS) else {
            return Ok(vec![OmNodeAddress {
                node_id: SINGLE_OM_NODE_ID.to_string(),
                address: self.get(keys::OZONE_OM_ADDRESS),
            }]);
        };
        let (_, listed) = self.service_nodes(
            "OM",
            &ids,
            keys::OZONE_OM_SERVICE_IDS,
            keys::OZONE_OM_NODES_SERVICEID,
            keys::OZONE_OM_ADDRESS_SERVICEID_NODEID,
        )?;
        Ok(listed
            .into_iter()
            .map(|(node_id, address)| OmNodeAddress { node_id, address })
            .collect())
    }

    /// The nodes of a replicated role's service (`role`: OM, SCM) named by `ids` (the value
    /// of `ids_key`, one service id): the service id and each node's id and address.
    fn service_nodes(
        &self,
        role: &str,
        ids: &str,
        ids_key: Key,
        nodes_key: KeyTemplate<1>,
        address_key: KeyTemplate<2>,
    ) -> Result<(String, Vec<(String, String)>), ConfigError> {
        let ids: Vec<&str> = ids
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let [sid] = ids.as_slice() else {
            return Err(invalid(
                ids_key,
                format!("exactly one {role} service id is supported, got {ids:?}"),
            ));
        };
        let nodes_key = nodes_key.with([sid]);
        let nodes = self.get(&nodes_key);
        let mut out: Vec<(String, String)> = Vec::new();
        for nid in nodes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if out.iter().any(|(n, _)| n == nid) {
                return Err(invalid(&nodes_key, format!("node id {nid} listed twice")));
            }
            let addr_key = address_key.with([sid, &nid]);
            let address = self.get_opt(&addr_key).ok_or_else(|| {
                invalid(
                    &addr_key,
                    format!("missing: every {role} node needs an address"),
                )
            })?;
            out.push((nid.to_string(), address));
        }
        if out.is_empty() {
            return Err(invalid(&nodes_key, format!("no {role} node ids listed")));
        }
        Ok((sid.to_string(), out))
    }

    /// Every OM gRPC address, for clients: [`Self::om_nodes`], else `ozone.om.address` read as
    /// a comma-separated list.
    pub fn om_addresses(&self) -> Vec<String> {
        match self.om_nodes() {
            Ok(nodes) if self.get_opt(keys::OZONE_OM_SERVICE_IDS).is_some() => {
                nodes.into_iter().map(|n| n.address).collect()
            }
            Ok(_) => self
                .get(keys::OZONE_OM_ADDRESS)
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "invalid OM service configuration; using ozone.om.address");
                vec![self.get(keys::OZONE_OM_ADDRESS)]
            }
        }
    }

    /// The configuration an `ozone-site.xml` document sets (no environment, no warning).
    pub fn from_site_xml(text: &str) -> Result<Self, String> {
        Ok(OzoneConfig {
            values: parse_site_xml(text)?,
        })
    }

    /// Sets every key `other` sets explicitly, over this configuration's values.
    pub fn extend(&mut self, other: OzoneConfig) -> &mut Self {
        self.values.extend(other.values);
        self
    }

    /// Whether `key` is set explicitly (in a file, the environment or by [`Self::set`]).
    pub fn is_set(&self, key: impl ConfKey) -> bool {
        self.values.contains_key(key.key_name())
    }

    /// Explicitly set keys and values (not defaults).
    pub fn explicit(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The explicitly set keys as an `ozone-site.xml` document.
    pub fn to_site_xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\"?>\n<configuration>\n");
        for (k, v) in &self.values {
            out.push_str(&format!(
                "  <property><name>{}</name><value>{}</value></property>\n",
                xml_escape(k),
                xml_escape(v)
            ));
        }
        out.push_str("</configuration>\n");
        out
    }
}

fn invalid(key: impl ConfKey, message: String) -> ConfigError {
    ConfigError::invalid(key, message)
}

/// The `OZONE-SITE.XML_<key>=<value>` environment overrides, as (key, value).
pub fn env_overrides() -> Vec<(String, String)> {
    std::env::vars()
        .filter_map(|(name, value)| {
            name.strip_prefix(ENV_PREFIX)
                .map(|key| (key.to_string(), value))
        })
        .collect()
}

/// Parses one `--set KEY=VALUE` argument (both sides trimmed; the value may hold `=`).
pub fn parse_set(kv: &str) -> Result<(KeyBuf, String), ConfigError> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| ConfigError::Set(kv.to_string()))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(ConfigError::Set(kv.to_string()));
    }
    Ok((KeyBuf::unchecked(k), v.trim().to_string()))
}

fn first_host(names: &str) -> &str {
    names.split(',').next().unwrap_or("127.0.0.1").trim()
}

/// The address a server should bind for an advertised `host:port`: the same when the host is
/// an IP literal, else every interface on that port.
pub fn bind_address(advertised: &str) -> String {
    match advertised.rsplit_once(':') {
        Some((host, port)) if host.parse::<std::net::IpAddr>().is_err() => {
            format!("0.0.0.0:{port}")
        }
        _ => advertised.to_string(),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Parses `<configuration><property><name>k</name><value>v</value></property>...`.
pub fn parse_site_xml(text: &str) -> Result<BTreeMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    struct Configuration {
        #[serde(rename = "property", default)]
        property: Vec<Property>,
    }
    #[derive(serde::Deserialize)]
    struct Property {
        name: String,
        #[serde(default)]
        value: String,
    }
    let cfg: Configuration = quick_xml::de::from_str(text).map_err(|e| e.to_string())?;
    Ok(cfg
        .property
        .into_iter()
        .map(|p| (p.name.trim().to_string(), p.value))
        .collect())
}

pub fn parse_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        "T" | "TB" => 1 << 40,
        _ => return None,
    };
    Some((num * mult as f64) as u64)
}

pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "" | "ms" => Duration::from_millis(num),
        "s" => Duration::from_secs(num),
        "m" => Duration::from_secs(num * 60),
        "h" => Duration::from_secs(num * 3600),
        "d" => Duration::from_secs(num * 86400),
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_site_xml_and_units() {
        let xml = r#"<?xml version="1.0"?><configuration>
            <property><name>ozone.scm.block.size</name><value>1MB</value></property>
            <property><name>hdds.heartbeat.interval</name><value>500ms</value></property>
        </configuration>"#;
        let mut cfg = OzoneConfig {
            values: parse_site_xml(xml).unwrap(),
        };
        assert_eq!(cfg.get_bytes(keys::OZONE_SCM_BLOCK_SIZE).unwrap(), 1 << 20);
        assert_eq!(
            cfg.get_duration(keys::HDDS_HEARTBEAT_INTERVAL).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(cfg.get(keys::OZONE_S3G_VOLUME_NAME), "s3v");
        cfg.set(keys::OZONE_SCM_NAMES, "scm");
        assert_eq!(cfg.scm_client_address(), "scm:9860");
        let round = parse_site_xml(&cfg.to_site_xml()).unwrap();
        assert_eq!(
            round.get(keys::OZONE_SCM_NAMES.name()).map(String::as_str),
            Some("scm")
        );
    }

    #[test]
    fn every_key_has_a_valid_default() {
        for k in KEYS {
            assert!(!k.doc.is_empty(), "{} has no doc", k.name);
        }
        let cfg = OzoneConfig::default();
        cfg.get_bytes(keys::OZONE_SCM_CONTAINER_SIZE).unwrap();
        cfg.get_duration(keys::OZONE_SCM_DEAD_NODE_INTERVAL)
            .unwrap();
        assert_eq!(parse_bytes("5GB"), Some(5 << 30));
        assert_eq!(bind_address("om:9862"), "0.0.0.0:9862");
        assert_eq!(bind_address("127.0.0.1:9862"), "127.0.0.1:9862");
    }

    #[test]
    fn keys_are_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for k in KEYS {
            assert!(seen.insert(k.name), "{} is listed twice", k.name);
        }
    }

    #[test]
    fn constants_follow_the_naming_rule() {
        assert_eq!(keys::IDENTS.len(), KEYS.len());
        for (ident, name) in keys::IDENTS {
            let want: String = name
                .chars()
                .filter(|c| !matches!(c, '<' | '>'))
                .map(|c| match c {
                    '.' | '-' => '_',
                    c => c.to_ascii_uppercase(),
                })
                .collect();
            assert_eq!(*ident, want, "constant of {name}");
        }
        assert_eq!(keys::OZONE_OM_ADDRESS.name(), "ozone.om.address");
        assert_eq!(
            keys::OZONE_OM_NODES_SERVICEID.name(),
            "ozone.om.nodes.<serviceId>"
        );
    }

    #[test]
    fn templates_make_keys() {
        let k = keys::OZONE_OM_ADDRESS_SERVICEID_NODEID.with([&"svc", &2]);
        assert_eq!(k.to_string(), "ozone.om.address.svc.2");
        assert!(is_listed(k.key_name()));
        assert!(!is_listed("ozone.om.adress"));
        let mut cfg = OzoneConfig::default();
        cfg.set(&k, "h:1");
        assert_eq!(cfg.get(KeyBuf::unchecked("ozone.om.address.svc.2")), "h:1");
        assert_eq!(
            ConfigError::invalid(keys::OZONE_OM_NODE_ID, "bad").to_string(),
            "configuration key ozone.om.node.id: bad"
        );
    }

    #[test]
    fn set_arguments() {
        let (k, v) = parse_set(" ozone.s3g.volume.name = v=1 ").unwrap();
        assert_eq!((k.key_name(), v.as_str()), ("ozone.s3g.volume.name", "v=1"));
        assert!(parse_set("ozone.s3g.volume.name").is_err());
        assert!(parse_set("=x").is_err());
        let mut cfg = OzoneConfig::default();
        cfg.set(keys::OZONE_S3G_VOLUME_NAME, "file");
        cfg.apply_sets(&[
            "ozone.s3g.volume.name=a".into(),
            "ozone.s3g.volume.name=b".into(),
        ])
        .unwrap();
        assert_eq!(cfg.get(keys::OZONE_S3G_VOLUME_NAME), "b");
        assert!(cfg.is_set(keys::OZONE_S3G_VOLUME_NAME));
        assert!(!cfg.is_set(keys::OZONE_OM_ADDRESS));
    }

    #[test]
    fn scm_service_keys() {
        let mut cfg = OzoneConfig::default();
        cfg.set(keys::OZONE_SCM_NAMES, "s");
        let single = cfg.scm_nodes().unwrap();
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].node_id, SINGLE_SCM_NODE_ID);
        assert_eq!(single[0].client, "s:9860");
        assert_eq!(single[0].datanode, "s:9861");
        cfg.set(keys::OZONE_SCM_SERVICE_IDS, "scmsvc")
            .set(
                keys::OZONE_SCM_NODES_SERVICEID.with([&"scmsvc"]),
                "scm1,scm2",
            )
            .set(
                keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID.with([&"scmsvc", &"scm1"]),
                "h1",
            );
        assert!(cfg.scm_nodes().is_err(), "scm2 has no address");
        cfg.set(
            keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID.with([&"scmsvc", &"scm2"]),
            "h2:1000",
        )
        .set(
            keys::OZONE_SCM_DATANODE_ADDRESS_SERVICEID_NODEID.with([&"scmsvc", &"scm2"]),
            "h2:1001",
        );
        let nodes = cfg.scm_nodes().unwrap();
        assert_eq!(nodes[0].client, "h1:9860");
        assert_eq!(nodes[0].datanode, "h1:9861");
        assert_eq!(nodes[1].client, "h2:1000");
        assert_eq!(nodes[1].datanode, "h2:1001");
        assert_eq!(cfg.scm_client_addresses(), vec!["h1:9860", "h2:1000"]);
        assert_eq!(cfg.scm_datanode_addresses(), vec!["h1:9861", "h2:1001"]);
    }

    #[test]
    fn om_service_keys() {
        assert!(key_matches(
            "ozone.om.nodes.<serviceId>",
            "ozone.om.nodes.omservice"
        ));
        assert!(key_matches(
            "ozone.om.address.<serviceId>.<nodeId>",
            "ozone.om.address.omservice.om2"
        ));
        assert!(!key_matches("ozone.om.nodes.<serviceId>", "ozone.om.nodes"));
        assert!(!key_matches(
            "ozone.om.address.<serviceId>.<nodeId>",
            "ozone.om.address.x"
        ));
        let mut cfg = OzoneConfig::default();
        cfg.set(keys::OZONE_OM_ADDRESS, "a:1,b:2");
        assert_eq!(cfg.om_addresses(), vec!["a:1", "b:2"]);
        assert_eq!(cfg.om_nodes().unwrap()[0].node_id, SINGLE_OM_NODE_ID);
        cfg.set(keys::OZONE_OM_SERVICE_IDS, "svc")
            .set(keys::OZONE_OM_NODES_SERVICEID.with([&"svc"]), "om1, om2")
            .set(
                keys::OZONE_OM_ADDRESS_SERVICEID_NODEID.with([&"svc", &"om1"]),
                "h1:9862",
            );
        assert!(cfg.om_nodes().is_err(), "om2 has no address");
        cfg.set(
            keys::OZONE_OM_ADDRESS_SERVICEID_NODEID.with([&"svc", &"om2"]),
            "h2:9862",
        );
        let nodes = cfg.om_nodes().unwrap();
        assert_eq!(nodes[1].node_id, "om2");
        assert_eq!(cfg.om_addresses(), vec!["h1:9862", "h2:9862"]);
    }
}

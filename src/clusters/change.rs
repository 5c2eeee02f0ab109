//! What the registry tells its subscribers about a region.

/// What happened to a region. Subscribers re-queue the objects that use `context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionChange {
    Context {
        context: String,
        kind: ChangeKind,
    },
    /// Changes were missed (the subscriber fell behind): treat every context as changed.
    Resync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A usable client for a context that had none.
    Added,
    /// New credentials or address for a context (edited ClientConfig, rotated Secret).
    Replaced,
    /// Another ClientConfig now provides the context (the previous one was deleted or renamed
    /// its context, or an older one claimed it).
    Claimed,
    /// The context has no usable client any more: its ClientConfig or Secret is wrong.
    Misconfigured,
    /// Its ClientConfig was deleted or stopped claiming the context.
    Removed,
    /// The prober reached the region (first time, after a failure, or a new server version).
    Reachable,
    /// The prober could not reach the region, or the credentials were rejected.
    Unreachable,
    /// A watch in the region was refused (403, 404), or works again: the objects that use the
    /// region say so in their status.
    WatchProblem,
    /// The region turned out to be the hub itself, or no longer is (see
    /// `Registry::reaches_hub`): what used it must look again where its objects are.
    Identity,
}

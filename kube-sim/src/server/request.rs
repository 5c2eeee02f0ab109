//! A request to a resource path, as the handlers of resources and watches read it.

use bytes::Bytes;
use hyper::Method;

use super::query::Query;

/// A request to a resource path, its body read.
pub struct ApiRequest {
    pub method: Method,
    pub query: Query,
    /// The query string as sent (the pods' proxy passes it on).
    pub raw_query: Option<String>,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    /// The `Cookie` header, which the proxies pass on (a Reaper's login session).
    pub cookie: Option<String>,
    /// Who sent it (None: an anonymous request, which reaches only public paths).
    pub user: Option<crate::auth::UserInfo>,
    pub body: Bytes,
}

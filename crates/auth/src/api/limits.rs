//! Request limits as GoTrue's: token buckets (governor) per client IP on the routes that sign
//! in or send mail, plus keyed limiters checked inside handlers (per email address for
//! mail-sending endpoints, per IP for anonymous sign-ups). Over the limit: 429
//! `over_request_rate_limit`.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::AuthError;
use super::request::client_ip;

/// How often idle buckets are dropped, so one-off clients do not accumulate.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(60);
/// GoTrue's windows.
pub(crate) const FIVE_MINUTES: Duration = Duration::from_secs(300);
pub(crate) const ONE_HOUR: Duration = Duration::from_secs(3600);
pub(crate) const ONE_MINUTE: Duration = Duration::from_secs(60);

/// A per-IP limit for one route: the configured header's address (behind a trusted proxy),
/// else the TCP peer's.
#[derive(Debug, Clone)]
pub(crate) struct IpLimit {
    limit: KeyedLimit<IpAddr>,
    header: Option<Arc<str>>,
}

impl IpLimit {
    /// Takes one request from the bucket of the request's client IP, or answers 429. GoTrue
    /// applies IP limits only when it knows the client's address; one shared bucket for every
    /// client of unknown address would let one of them lock all the others out.
    pub(crate) fn admit<B>(&self, request: &http::Request<B>) -> Result<(), AuthError> {
        match client_ip(request, self.header.as_deref()) {
            Some(ip) => self.limit.check(&ip),
            None => Ok(()),
        }
    }

    /// Middleware body: the request goes on only when [`IpLimit::admit`] lets it.
    pub(crate) async fn middleware(self, request: Request, next: Next) -> Response {
        match self.admit(&request) {
            Ok(()) => next.run(request).await,
            Err(error) => error.into_response(),
        }
    }
}

/// `count` requests per `period` with bursts up to `burst`; `None` when `count` is 0 (off).
fn quota(count: u32, period: Duration, burst: u32) -> Option<Quota> {
    let count = NonZeroU32::new(count)?;
    let burst = NonZeroU32::new(burst.min(count.get()).max(1))?;
    Quota::with_period(period / count.get()).map(|quota| quota.allow_burst(burst))
}

/// The limit of `count` per `period` per client IP; `None` switches it off.
pub(crate) fn per_ip(
    count: u32,
    period: Duration,
    burst: u32,
    header: Option<&str>,
) -> Option<IpLimit> {
    let limit = KeyedLimit::new(count, period, burst);
    limit.limiter.as_ref()?;
    Some(IpLimit {
        limit,
        header: header.map(Arc::from),
    })
}

/// A limiter checked inside a handler, keyed by `K`.
#[derive(Clone)]
pub(crate) struct KeyedLimit<K: Hash + Eq + Clone + Send + Sync + 'static> {
    limiter: Option<Arc<DefaultKeyedRateLimiter<K>>>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> std::fmt::Debug for KeyedLimit<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("enabled", &self.limiter.is_some())
            .finish()
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> KeyedLimit<K> {
    /// `count` per `period` per key, bursts up to `burst`; 0 switches it off.
    pub(crate) fn new(count: u32, period: Duration, burst: u32) -> Self {
        let limiter = quota(count, period, burst).map(|quota| Arc::new(RateLimiter::keyed(quota)));
        if let Some(limiter) = &limiter {
            spawn_cleanup(Arc::downgrade(limiter));
        }
        Self { limiter }
    }

    /// Takes one request from `key`'s bucket, or answers 429.
    pub(crate) fn check(&self, key: &K) -> Result<(), AuthError> {
        match &self.limiter {
            Some(limiter) if limiter.check_key(key).is_err() => Err(AuthError::rate_limited()),
            _ => Ok(()),
        }
    }
}

/// Drops idle buckets every minute for as long as the limiter exists.
fn spawn_cleanup<K: Hash + Eq + Clone + Send + Sync + 'static>(
    limiter: Weak<DefaultKeyedRateLimiter<K>>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(CLEANUP_INTERVAL).await;
            let Some(limiter) = limiter.upgrade() else {
                break;
            };
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::extract::ConnectInfo;

    use super::*;

    fn request(peer: Option<&str>, header: Option<&str>) -> http::Request<()> {
        let mut request = http::Request::new(());
        if let Some(peer) = peer {
            let peer: SocketAddr = peer.parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        if let Some(ip) = header {
            request
                .headers_mut()
                .insert("x-client-ip", ip.parse().unwrap());
        }
        request
    }

    #[test]
    fn ip_limits_count_per_address_and_skip_unknown_addresses() {
        let limit = per_ip(2, FIVE_MINUTES, 30, Some("x-client-ip")).unwrap();
        let peer = request(Some("10.0.0.1:5000"), None);
        assert!(limit.admit(&peer).is_ok());
        assert!(limit.admit(&peer).is_ok());
        assert_eq!(
            limit.admit(&peer).unwrap_err().code(),
            "over_request_rate_limit"
        );
        // The trusted header names the client; its own bucket is still full.
        assert!(
            limit
                .admit(&request(Some("10.0.0.1:5000"), Some("10.9.9.9")))
                .is_ok()
        );
        // Without a peer address or header the client is unknown: no shared bucket to exhaust.
        for _ in 0..10 {
            assert!(limit.admit(&request(None, None)).is_ok());
        }
        assert!(per_ip(0, FIVE_MINUTES, 30, None).is_none());
    }

    #[test]
    fn keyed_limits_count_per_key_and_zero_is_off() {
        let limit = KeyedLimit::<String>::new(2, FIVE_MINUTES, 30);
        assert!(limit.check(&"a".into()).is_ok());
        assert!(limit.check(&"a".into()).is_ok());
        assert_eq!(
            limit.check(&"a".into()).unwrap_err().code(),
            "over_request_rate_limit"
        );
        assert!(limit.check(&"b".into()).is_ok());
        let off = KeyedLimit::<String>::new(0, FIVE_MINUTES, 30);
        for _ in 0..100 {
            assert!(off.check(&"a".into()).is_ok());
        }
    }
}

//! Request limits as GoTrue's: token buckets per client IP with tower-governor on the routes
//! that sign in or send mail, plus keyed limiters checked inside handlers (per email address for
//! mail-sending endpoints, per IP for anonymous sign-ups). Over the limit: 429
//! `over_request_rate_limit`.

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_governor::GovernorLayer;
use tower_governor::errors::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

use super::error::AuthError;
use super::request::client_ip;

/// How often idle buckets are dropped, so one-off clients do not accumulate.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(60);
/// GoTrue's windows.
pub(crate) const FIVE_MINUTES: Duration = Duration::from_secs(300);
pub(crate) const ONE_HOUR: Duration = Duration::from_secs(3600);
pub(crate) const ONE_MINUTE: Duration = Duration::from_secs(60);

/// Keys requests by client IP: the configured header (behind a trusted proxy), else the peer.
/// An unknown IP shares one bucket rather than escaping the limit.
#[derive(Debug, Clone)]
pub(crate) struct ClientIpKey {
    header: Option<Arc<str>>,
}

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, request: &http::Request<T>) -> Result<Self::Key, GovernorError> {
        Ok(client_ip(request, self.header.as_deref()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }
}

/// A per-IP limit layer for one route.
pub(crate) type IpLimit = GovernorLayer<ClientIpKey, NoOpMiddleware, Body>;

/// `count` requests per `period` with bursts up to `burst`; `None` when `count` is 0 (off).
fn quota(count: u32, period: Duration, burst: u32) -> Option<Quota> {
    let count = NonZeroU32::new(count)?;
    let burst = NonZeroU32::new(burst.min(count.get()).max(1))?;
    Quota::with_period(period / count.get()).map(|quota| quota.allow_burst(burst))
}

/// The tower-governor layer for `count` per `period` per client IP; `None` switches it off.
pub(crate) fn per_ip(
    count: u32,
    period: Duration,
    burst: u32,
    header: Option<&str>,
) -> Option<IpLimit> {
    let count = NonZeroU32::new(count)?;
    let burst = burst.min(count.get()).max(1);
    let config = GovernorConfigBuilder::default()
        .period(period / count.get())
        .burst_size(burst)
        .key_extractor(ClientIpKey {
            header: header.map(Arc::from),
        })
        .finish()?;
    let limiter = Arc::downgrade(config.limiter());
    spawn_cleanup(limiter);
    Some(GovernorLayer::new(config).error_handler(|_| AuthError::rate_limited().into_response()))
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
    use super::*;

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

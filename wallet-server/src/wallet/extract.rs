//! Small extractors for the wallet endpoints.

use crate::error::AppError;
use axum::extract::{ConnectInfo, FromRequestParts, Query};
use axum::http::request::Parts;
use std::net::{IpAddr, SocketAddr};

/// The client address when the server runs with connect info (`serve`), `None` otherwise (tests
/// calling the router directly). Every per-address limit of the server reads it from here. Forwarding headers are not trusted: behind a reverse proxy the
/// per-address limits apply to the proxy, so set them generously there or limit at the proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| front_door::client_address(*a)),
        ))
    }
}

/// `Query` whose rejection is our error body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(AppError::BadRequest(rejection.body_text())),
        }
    }
}

//! Guichet: an email-driven helpdesk daemon.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod desk;
pub mod domain;
pub mod ingest;
pub mod languages;
pub mod notify;
pub mod oauth;
pub mod ops;
pub mod parse;
pub mod run;
pub mod store;
pub mod telemetry;
pub mod threading;
pub mod tls;
pub mod trust;
pub mod web;
pub mod workers;

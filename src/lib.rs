//! Guichet: an email-driven helpdesk daemon.

pub mod domain;
pub mod notify;
pub mod parse;
pub mod config;
pub mod store;
pub mod threading;
pub mod desk;
pub mod app;
pub mod ingest;
pub mod auth;
pub mod cli;
pub mod run;
pub mod telemetry;
pub mod web;

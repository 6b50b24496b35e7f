//! The command as a Tower layer.

use std::{fmt, sync::Arc};

use tower_layer::Layer;

use super::{Command, CommandService, Handling, Requests};

/// Applies a [`Command`] to services: every service it wraps shares the command's circuit,
/// bulkhead and metrics. Built by [`CommandBuilder::build`](crate::CommandBuilder::build).
pub struct CommandLayer<Req, Res, K = ()> {
    command: Command,
    requests: Arc<Requests<Req, K>>,
    handling: Arc<Handling<Res, K>>,
}

impl<Req, Res, K> CommandLayer<Req, Res, K> {
    pub(crate) fn new(
        command: Command,
        requests: Arc<Requests<Req, K>>,
        handling: Arc<Handling<Res, K>>,
    ) -> Self {
        Self {
            command,
            requests,
            handling,
        }
    }

    /// The command the layer applies.
    pub fn command(&self) -> &Command {
        &self.command
    }
}

impl<S, Req, Res, K> Layer<S> for CommandLayer<Req, Res, K> {
    type Service = CommandService<S, Req, Res, K>;

    fn layer(&self, inner: S) -> Self::Service {
        CommandService::new(
            inner,
            self.command.clone(),
            self.requests.clone(),
            self.handling.clone(),
        )
    }
}

impl<Req, Res, K> Clone for CommandLayer<Req, Res, K> {
    fn clone(&self) -> Self {
        Self {
            command: self.command.clone(),
            requests: self.requests.clone(),
            handling: self.handling.clone(),
        }
    }
}

impl<Req, Res, K> fmt::Debug for CommandLayer<Req, Res, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandLayer")
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

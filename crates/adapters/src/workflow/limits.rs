//! The run's limits (`limits.max_experiments`, `limits.patience`, `limits.time_budget_s`) as
//! stop reasons: one text per limit, used wherever a limit stops the run (admission, a
//! planning round, a resume with nothing to run), so the reason a user reads is always the
//! limit that stopped it.

use super::ExperimentWorkflow;

impl ExperimentWorkflow {
    /// `max_experiments` is reached: no experiment that has not started may start.
    pub(crate) fn max_experiments_reached(&self) -> Option<String> {
        let started = self.experiments_started();
        let max = self.config.limits.max_experiments;
        (started >= max).then(|| format!("max_experiments reached ({started} of {max} started)"))
    }

    /// `patience` is spent: too many experiments in a row without an improvement.
    pub(crate) fn patience_spent(&self) -> Option<String> {
        let plateau = self.ledger.snapshot().plateau;
        let patience = self.config.limits.patience;
        (plateau >= patience).then(|| {
            format!(
                "patience spent: {plateau} experiments in a row without an improvement of at \
                 least {} (patience {patience})",
                self.config.objective.min_improvement
            )
        })
    }

    /// `time_budget_s` is used up.
    pub(crate) fn time_budget_used(&self) -> Option<String> {
        let budget = self.config.limits.time_budget_s?;
        let used = self.ledger.time_used_s();
        (used >= budget).then(|| format!("time budget used ({used:.0} s of {budget:.0} s)"))
    }

    /// The first limit reached, if any: experiments, then patience, then time.
    pub(crate) fn limit_reached(&self) -> Option<String> {
        self.max_experiments_reached()
            .or_else(|| self.patience_spent())
            .or_else(|| self.time_budget_used())
    }
}

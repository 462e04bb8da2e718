//! Pipelines: forming factor-ONE and factor-THREE pipelines of usable datanodes, closing them.

use std::collections::HashMap;
use std::time::Instant;

use ozone_common::now_ms;

use super::ScmState;
use crate::error::ScmError;
use crate::factor::Factor;
use crate::model::{PipelineRecord, PipelineState, PipelineView};

impl ScmState {
    /// Forms factor-ONE pipelines (one per usable datanode) and factor-THREE pipelines of
    /// three distinct usable datanodes, each datanode in at most `pipeline_limit` open
    /// pipelines of a factor. Commits new pipelines.
    pub fn form_pipelines(&mut self, now: Instant) -> Result<(), ScmError> {
        let usable: Vec<String> = self
            .nodes
            .keys()
            .filter(|u| self.usable(u, now))
            .cloned()
            .collect();
        if usable.is_empty() {
            return Ok(());
        }
        let mut counts: HashMap<(String, Factor), usize> = HashMap::new();
        for p in self.pipelines.values() {
            if p.state == PipelineState::Open {
                for n in &p.nodes {
                    *counts.entry((n.clone(), p.factor)).or_default() += 1;
                }
            }
        }
        let mut created = false;
        for uuid in &usable {
            if counts
                .get(&(uuid.clone(), Factor::One))
                .copied()
                .unwrap_or(0)
                == 0
            {
                self.create_pipeline(Factor::One, vec![uuid.clone()]);
                counts.insert((uuid.clone(), Factor::One), 1);
                created = true;
            }
        }
        loop {
            let mut candidates: Vec<(usize, &String)> = usable
                .iter()
                .map(|u| {
                    let c = counts.get(&(u.clone(), Factor::Three)).copied();
                    (c.unwrap_or(0), u)
                })
                .filter(|(c, _)| *c < self.cfg.pipeline_limit)
                .collect();
            if candidates.len() < Factor::Three.nodes() {
                break;
            }
            candidates.sort();
            let members: Vec<String> = candidates
                .iter()
                .take(Factor::Three.nodes())
                .map(|(_, u)| (*u).clone())
                .collect();
            for m in &members {
                *counts.entry((m.clone(), Factor::Three)).or_default() += 1;
            }
            self.create_pipeline(Factor::Three, members);
            created = true;
        }
        if created {
            self.persist()?;
        }
        Ok(())
    }

    fn create_pipeline(&mut self, factor: Factor, nodes: Vec<String>) {
        let id = uuid::Uuid::new_v4().to_string();
        tracing::info!(pipeline = %id, %factor, nodes = ?nodes, "pipeline created");
        self.pipelines.insert(
            id.clone(),
            PipelineRecord {
                id: id.clone(),
                factor,
                nodes,
                state: PipelineState::Open,
                created_ms: now_ms(),
            },
        );
        self.dirty.pipelines.insert(id);
        self.dirty.structural = true;
    }

    /// Closes a pipeline and its open containers. A pipeline that never held a container is
    /// removed altogether.
    pub(super) fn close_pipeline(&mut self, id: &str, reason: &str) {
        let Some(p) = self.pipelines.get_mut(id) else {
            return;
        };
        if p.state == PipelineState::Closed {
            return;
        }
        tracing::warn!(pipeline = %id, factor = %p.factor, reason, "pipeline closed");
        p.state = PipelineState::Closed;
        let open: Vec<u64> = self
            .open_by_pipeline
            .get(id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for c in open {
            self.close_container(c, "its pipeline closed");
        }
        self.open_by_pipeline.remove(id);
        if self.containers.values().any(|c| c.record.pipeline_id == id) {
            self.dirty.pipelines.insert(id.to_string());
        } else {
            self.pipelines.remove(id);
            self.dirty.pipelines.remove(id);
            self.dirty.removed_pipelines.insert(id.to_string());
        }
        self.dirty.structural = true;
    }

    pub(super) fn pipeline_view(&self, p: &PipelineRecord) -> PipelineView {
        PipelineView {
            id: p.id.clone(),
            factor: p.factor,
            state: p.state,
            nodes: p
                .nodes
                .iter()
                .filter_map(|u| self.nodes.get(u).map(|n| n.record.details.clone()))
                .collect(),
        }
    }

    pub(super) fn has_usable_pipeline(&self, factor: Factor, now: Instant) -> bool {
        self.pipelines.values().any(|p| {
            p.state == PipelineState::Open
                && p.factor == factor
                && p.nodes.iter().all(|n| self.usable(n, now))
        })
    }
}

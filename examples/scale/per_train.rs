//! The per-rollout way, for comparison: every train planned and queried on its own.

use super::*;

/// One cycle the per-rollout way: every train planned alone (`train_id="X"` matchers), all
/// queries through one client, at most `MAX_CONCURRENT_QUERIES` in flight; then each train's
/// decision from its own answers. Returns the decisions and the time the queries took.
pub(crate) async fn per_train_cycle(
    client: &Arc<PrometheusClient>,
    config: &Config,
    trains: &[TrainSpec],
    at: DateTime<Utc>,
) -> anyhow::Result<(BTreeMap<gate_rules::TrainId, Decision>, f64)> {
    let gate = &config.gates[0];
    let started = Instant::now();
    let plans = trains
        .iter()
        .map(|t| planner::plan(config, gate, std::slice::from_ref(t), at))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_QUERIES));
    let mut tasks = JoinSet::new();
    for (ti, plan) in plans.iter().enumerate() {
        for (qi, q) in plan.queries.iter().enumerate() {
            let client = Arc::clone(client);
            let limit = Arc::clone(&limit);
            let q = q.clone();
            let plan_at = plan.at;
            let train = trains[ti].clone();
            let label = config.train_label.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore never closed");
                let answer = match q.range {
                    None => client
                        .query(&q.promql, plan_at)
                        .await
                        .map(|r| samples(r.data, &label)),
                    // The stepped baseline: a range query, summed over the train's window.
                    Some(range) => evaluate::read_range(&client, &q.promql, range, &label)
                        .await
                        .map(|read| {
                            read.and_then(|series| {
                                planner::range_samples(plan_at, &q, &[train], &series)
                            })
                        }),
                };
                (ti, qi, answer)
            });
        }
    }
    let mut answers: Vec<Vec<Option<Answer>>> =
        plans.iter().map(|p| vec![None; p.queries.len()]).collect();
    while let Some(joined) = tasks.join_next().await {
        let (ti, qi, result) = joined?;
        answers[ti][qi] = Some(match result {
            Ok(answer) => answer,
            Err(e) => anyhow::bail!("per-train query failed: {e}"),
        });
    }
    let fetch_s = started.elapsed().as_secs_f64();
    let mut decisions = BTreeMap::new();
    for ((train, plan), answers) in trains.iter().zip(&plans).zip(answers) {
        let results = answers
            .into_iter()
            .map(|a| a.expect("every query joined"))
            .collect();
        let one = std::slice::from_ref(train);
        let mut signals = planner::assemble(config, gate, one, plan, results);
        let signals = signals.remove(&train.id).expect("train assembled");
        let (evaluation, report) = evaluate::decide_train(
            config,
            gate,
            train,
            plan,
            &signals,
            &TrainState::default(),
            Mode::Daemon,
        );
        std::hint::black_box(serde_json::to_vec(&report)?);
        decisions.insert(train.id.clone(), evaluation.decision);
    }
    Ok((decisions, fetch_s))
}

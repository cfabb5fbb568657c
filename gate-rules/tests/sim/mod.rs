//! Simulated release trains for measuring the error-delta tests: calibration (how often a
//! healthy train is flagged) and power (how soon a regression is caught).
//!
//! Shared by the fast test `tests/sequential_sim.rs` (few trains, asserts thresholds) and the
//! full run `examples/sequential_sim.rs` (2,000 trains per scenario, prints the table of
//! `docs/statistics.md`) through `#[path]`, so both measure the same code; a cargo feature
//! would have put the random-number crates into the library's dependencies for nothing.
//!
//! A train is looked at every [`LOOK_SECS`] for [`LOOKS`] looks (2 h). Requests arrive as a
//! Poisson process: per look and side, errors and good events are independent Poisson counts
//! (the same as Poisson arrivals each failing with the error ratio). The tests see cumulative
//! counts since the train's start and of its baseline over an equal window, as the daemon
//! does. Each train is run through the real test code: [`gate_rules::sequential`] and the
//! fixed-horizon [`gate_rules::stats::train_worse`] re-tested at every look.

use gate_rules::sequential::SequentialTest;
use gate_rules::stats::train_worse;
use gate_rules::Counts;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, Poisson};

/// Seconds between looks.
pub const LOOK_SECS: f64 = 30.0;
/// Looks per train: 2 h.
pub const LOOKS: usize = 240;
/// The false-alarm bound of every test.
pub const ALPHA: f64 = 0.01;
/// The sequential test's margin: ratios up to 1.05 are healthy.
pub const MIN_EFFECT: f64 = 0.05;
/// The seed of scenario `i` is `SEED + i`.
pub const SEED: u64 = 20_261_130;

/// Looks in 5 minutes.
pub const LOOKS_5M: usize = 10;
/// Looks in 30 minutes.
pub const LOOKS_30M: usize = 60;

/// Extra-Poisson variation of the error rate, drawn per look and side independently.
#[derive(Debug, Clone, Copy)]
pub enum Noise {
    /// None: pure Poisson counts.
    Poisson,
    /// The error rate of each look is multiplied by a Gamma(shape, 1/shape) draw (mean 1).
    Gamma {
        /// Gamma shape: variance of the multiplier is 1/shape.
        shape: f64,
    },
    /// With probability `prob` a look's error rate is multiplied by `factor`.
    Bursts {
        /// Chance per look and side.
        prob: f64,
        /// Error-rate multiplier during a burst.
        factor: f64,
    },
}

/// One kind of train.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Row label.
    pub name: &'static str,
    /// Train error rate ÷ baseline error rate.
    pub ratio: f64,
    /// The train's traffic (req/s) at its start and after [`Scenario::ramp_looks`] looks.
    pub train_rps: (f64, f64),
    /// Looks over which the train's traffic ramps linearly (0: constant).
    pub ramp_looks: usize,
    /// The baseline's traffic (req/s).
    pub baseline_rps: f64,
    /// The baseline's error ratio.
    pub error_ratio: f64,
    /// Extra-Poisson noise on both sides.
    pub noise: Noise,
}

impl Scenario {
    /// Healthy: the train's rate is within the margin, so flagging it is a false alarm.
    pub fn healthy(&self) -> bool {
        self.ratio <= 1.0 + MIN_EFFECT
    }

    fn train_rps_at(&self, look: usize) -> f64 {
        let (from, to) = self.train_rps;
        if self.ramp_looks == 0 || look >= self.ramp_looks {
            return to;
        }
        from + (to - from) * look as f64 / self.ramp_looks as f64
    }
}

/// The scenarios of the table, in order.
pub fn scenarios() -> Vec<Scenario> {
    let base = Scenario {
        name: "",
        ratio: 1.0,
        train_rps: (100.0, 100.0),
        ramp_looks: 0,
        baseline_rps: 100.0,
        error_ratio: 0.001,
        noise: Noise::Poisson,
    };
    let ramp = Scenario {
        train_rps: (10.0, 100.0),
        ramp_looks: 120,
        ..base
    };
    let before_start = Scenario {
        baseline_rps: 1000.0,
        ..base
    };
    let busy = Scenario {
        train_rps: (2000.0, 2000.0),
        baseline_rps: 2000.0,
        error_ratio: 0.01,
        ..base
    };
    let gamma = Scenario {
        noise: Noise::Gamma { shape: 2.0 },
        ..base
    };
    let bursts = Scenario {
        noise: Noise::Bursts {
            prob: 0.02,
            factor: 10.0,
        },
        ..base
    };
    vec![
        Scenario {
            name: "ρ = 1",
            ..base
        },
        Scenario {
            name: "ρ = 1.05 (inside the margin)",
            ratio: 1.05,
            ..base
        },
        Scenario {
            name: "ρ = 1.5",
            ratio: 1.5,
            ..base
        },
        Scenario {
            name: "ρ = 2",
            ratio: 2.0,
            ..base
        },
        Scenario {
            name: "ρ = 5",
            ratio: 5.0,
            ..base
        },
        Scenario {
            name: "ramp 10 → 100 req/s, ρ = 1",
            ..ramp
        },
        Scenario {
            name: "ramp 10 → 100 req/s, ρ = 2",
            ratio: 2.0,
            ..ramp
        },
        Scenario {
            name: "before_start at 10× traffic, ρ = 1",
            ..before_start
        },
        Scenario {
            name: "before_start at 10× traffic, ρ = 1.5",
            ratio: 1.5,
            ..before_start
        },
        Scenario {
            name: "2,000 req/s at 1 %, ρ = 1",
            ..busy
        },
        Scenario {
            name: "2,000 req/s at 1 %, ρ = 1.1",
            ratio: 1.1,
            ..busy
        },
        Scenario {
            name: "overdispersed (Gamma shape 2), ρ = 1",
            ..gamma
        },
        Scenario {
            name: "overdispersed (Gamma shape 2), ρ = 2",
            ratio: 2.0,
            ..gamma
        },
        Scenario {
            name: "bursts (2 % of looks at 10×), ρ = 1",
            ..bursts
        },
    ]
}

/// The detectors compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    /// The anytime-valid e-process: `significant`.
    Sequential,
    /// The fixed-horizon p-value re-tested at every look: `p_value < alpha`.
    FixedHorizon,
    /// The same with the example config's `relative > 0.5`.
    FixedHorizonRelative,
}

impl Detector {
    /// All, in table order.
    pub const ALL: [Detector; 3] = [
        Detector::Sequential,
        Detector::FixedHorizon,
        Detector::FixedHorizonRelative,
    ];

    /// Column label.
    pub fn label(self) -> &'static str {
        match self {
            Detector::Sequential => "anytime-valid `significant`",
            Detector::FixedHorizon => "fixed-horizon `significant`",
            Detector::FixedHorizonRelative => "fixed-horizon `significant && relative > 0.5`",
        }
    }
}

/// The first look (1-based) at which each detector flagged each train.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per train, per detector (in [`Detector::ALL`] order).
    pub first_flag: Vec<[Option<usize>; 3]>,
}

impl Outcome {
    fn flags(&self, d: Detector) -> impl Iterator<Item = Option<usize>> + '_ {
        let i = Detector::ALL.iter().position(|x| *x == d).unwrap();
        self.first_flag.iter().map(move |f| f[i])
    }

    /// Share of trains flagged at or before `look`.
    pub fn share_by(&self, d: Detector, look: usize) -> f64 {
        let n = self
            .flags(d)
            .filter(|f| f.is_some_and(|k| k <= look))
            .count();
        n as f64 / self.first_flag.len() as f64
    }

    /// Median time to the first flag in minutes, counting unflagged trains as never (`None`
    /// when fewer than half were flagged within [`LOOKS`]).
    pub fn median_minutes(&self, d: Detector) -> Option<f64> {
        let mut looks: Vec<usize> = self.flags(d).map(|f| f.unwrap_or(usize::MAX)).collect();
        looks.sort_unstable();
        let mid = looks[(looks.len() - 1) / 2];
        (mid != usize::MAX).then(|| mid as f64 * LOOK_SECS / 60.0)
    }
}

fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    Poisson::new(mean).expect("positive mean").sample(rng)
}

fn noise(rng: &mut StdRng, noise: Noise) -> f64 {
    match noise {
        Noise::Poisson => 1.0,
        Noise::Gamma { shape } => Gamma::new(shape, 1.0 / shape)
            .expect("positive shape")
            .sample(rng),
        Noise::Bursts { prob, factor } => {
            if rng.random::<f64>() < prob {
                factor
            } else {
                1.0
            }
        }
    }
}

/// One look's (errors, total) on one side.
fn look(rng: &mut StdRng, rps: f64, error_ratio: f64, multiplier: f64) -> (f64, f64) {
    let requests = rps * LOOK_SECS;
    let errors = poisson(rng, requests * error_ratio * multiplier);
    let good = poisson(rng, requests * (1.0 - error_ratio));
    (errors, errors + good)
}

/// Runs `trains` trains of `scenario` (scenario number `index` picks the seed).
pub fn simulate(scenario: &Scenario, index: usize, trains: usize) -> Outcome {
    let mut rng = StdRng::seed_from_u64(SEED + index as u64);
    let test = SequentialTest::new(ALPHA, MIN_EFFECT).expect("valid parameters");
    let first_flag = (0..trains)
        .map(|_| {
            let mut state = test.start();
            let mut flags: [Option<usize>; 3] = [None; 3];
            let (mut train, mut base) = ((0.0, 0.0), (0.0, 0.0));
            for k in 1..=LOOKS {
                let (m1, m2) = (
                    noise(&mut rng, scenario.noise),
                    noise(&mut rng, scenario.noise),
                );
                let rate = scenario.error_ratio * scenario.ratio;
                let t = look(&mut rng, scenario.train_rps_at(k), rate, m1);
                let b = look(&mut rng, scenario.baseline_rps, scenario.error_ratio, m2);
                train = (train.0 + t.0, train.1 + t.1);
                base = (base.0 + b.0, base.1 + b.1);
                let (tc, bc) = (
                    Counts {
                        errors: train.0,
                        total: train.1,
                    },
                    Counts {
                        errors: base.0,
                        total: base.1,
                    },
                );
                if flags[0].is_none() && state.observe(tc, bc).significant {
                    flags[0] = Some(k);
                }
                if flags[1].is_none() || flags[2].is_none() {
                    if let Some(outcome) = train_worse(tc, bc) {
                        let significant = outcome.p_value < ALPHA;
                        if significant && flags[1].is_none() {
                            flags[1] = Some(k);
                        }
                        if significant && flags[2].is_none() && relative(tc, bc) > 0.5 {
                            flags[2] = Some(k);
                        }
                    }
                }
                if flags.iter().all(Option::is_some) {
                    break;
                }
            }
            flags
        })
        .collect();
    Outcome { first_flag }
}

/// `error_delta(...).relative`: (train ratio − baseline ratio) ÷ baseline ratio.
fn relative(train: Counts, base: Counts) -> f64 {
    let (r1, r2) = (train.errors / train.total, base.errors / base.total);
    if r2 > 0.0 {
        (r1 - r2) / r2
    } else if r1 > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

//! Twisted's Deferred introduction, "a result you don't have yet": `order_food()` returns a
//! placeholder (a Deferred) that the kitchen fires later; callbacks eat the meal and
//! compliment the chef, and the four error-handling clauses (try/except, try/except/else,
//! try around everything, finally) are each run with a kitchen that has eggs and with one
//! that has run out.
//!
//! ```text
//! cargo run --release --example order_food
//! ```
//!
//! From the seed 002.
use std::fmt;

use clap::Parser;
use torsion::defer::{gather_results, Deferred};
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// Deferred callbacks and errbacks, walked through with a breakfast order (Twisted's
/// Deferred introduction).
#[derive(Parser)]
struct Cli {}

/// What the kitchen sends out.
#[derive(Debug, Default)]
enum Meal {
    /// What we ordered.
    EggsBenedict,
    /// What you get when you do not say what you want.
    #[default]
    DryToast,
}

impl fmt::Display for Meal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Meal::EggsBenedict => "eggs benedict",
            Meal::DryToast => "dry toast",
        })
    }
}

/// The kitchen's bad news.
#[derive(Debug)]
struct OutOfEggs;

impl fmt::Display for OutOfEggs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the kitchen is out of eggs")
    }
}

impl std::error::Error for OutOfEggs {}

/// Where the order goes.
#[derive(Debug, Clone, Copy)]
enum Kitchen {
    /// Cooks eggs benedict.
    Stocked,
    /// Fails with [`OutOfEggs`].
    NoEggs,
}

impl fmt::Display for Kitchen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kitchen::Stocked => "kitchen with eggs",
            Kitchen::NoEggs => "kitchen without eggs",
        })
    }
}

/// Places an order and returns at once: the placeholder fires when the kitchen answers.
fn order_food(kitchen: Kitchen) -> Deferred<Meal> {
    let placeholder = Deferred::new();
    let fire = placeholder.trigger();
    reactor().call_later(0.1, move || match kitchen {
        Kitchen::Stocked => fire.callback(Meal::EggsBenedict),
        Kitchen::NoEggs => fire.errback(OutOfEggs),
    });
    placeholder
}

/// Eats the meal; returns whether it was any good.
fn eat_meal(meal: Meal) -> bool {
    println!("  eat_meal: nom nom nom, {meal}");
    matches!(meal, Meal::EggsBenedict)
}

/// Gets the result of `eat_meal`.
fn compliment_chef(praiseworthy: bool) {
    if praiseworthy {
        println!("  compliment_chef: Wuu chef!");
    } else {
        println!("  compliment_chef: I sneeze in your face!");
    }
}

/// The action of the clauses: eat the meal, then compliment the chef.
fn do_action(meal: Meal) {
    compliment_chef(eat_meal(meal));
}

/// Handles the error and recovers with a default value: `()` where Python's `handle_error`
/// returns `None`, dry toast where the chain expects a meal.
fn handle_error<T: Default>(failure: Failure) -> Result<T, Failure> {
    println!("  handle_error: {failure}");
    Ok(T::default())
}

/// Runs on success or failure, and passes the outcome on, like `finally`.
fn do_cleanup<T>(outcome: Result<T, Failure>) -> Result<T, Failure> {
    println!("  do_cleanup: clear the table");
    outcome
}

/// Orders from each kitchen, runs `clause` on the placeholder, and says how the chain ended.
fn serve<T: 'static>(
    title: &'static str,
    clause: impl Fn(Deferred<Meal>) -> Deferred<T>,
) -> Vec<Deferred<()>> {
    [Kitchen::Stocked, Kitchen::NoEggs]
        .into_iter()
        .map(|kitchen| {
            let placeholder = order_food(kitchen).add_both(move |outcome| {
                println!("{title} ({kitchen}):");
                outcome
            });
            clause(placeholder).add_both(|outcome| {
                match outcome {
                    Ok(_) => println!("  => the chain ends with a result"),
                    Err(failure) => println!("  => the chain ends with a failure: {failure}"),
                }
                Ok(())
            })
        })
        .collect()
}

fn main() -> Result<(), Failure> {
    Cli::parse();
    init_logging();
    let mut all = Vec::new();

    all.extend(serve("0. Callbacks only", |deferred| {
        deferred
            .add_callback(eat_meal)
            .add_callback(compliment_chef)
    }));

    all.extend(serve(
        "1. Handle error then do the action anyway",
        |deferred| deferred.add_errback(handle_error).add_callback(do_action),
    ));

    all.extend(serve(
        "2. Handle the error but do the action only if the error doesn't occur",
        |deferred| deferred.add_callbacks(do_action, handle_error),
    ));

    all.extend(serve(
        "3. Handle the error for the entire operation",
        |deferred| deferred.add_callback(do_action).add_errback(handle_error),
    ));

    all.extend(serve(
        "4. Do something regardless of success or failure",
        |deferred| deferred.add_both(do_cleanup),
    ));

    gather_results(all).add_both(|_| reactor().stop());
    reactor().run()
}

//! Dividing a dataset's classes into two tasks, A and B, as in Yosinski et al. 2014 (random
//! halves for similar tasks, natural vs man-made for dissimilar ones).
//!
//! Each task keeps its classes' images, relabelled 0..k-1 in the task's class order. Training
//! images come from the dataset's train set and held-out images from its test set. Capping the
//! images per class samples each class from its own seeded stream, so a class gets the same
//! images whichever task it lands in and whatever the other classes are.

use super::rng::Rng;
use super::Dataset;
use crate::schema::nearest_name;

/// How the classes are divided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitMethod {
    /// A seeded shuffle of all classes; A takes the first `size_a` (0: half, rounded down), B the
    /// next `size_b` (0: all the rest).
    Random { size_a: usize, size_b: usize },
    /// Classes named (or numbered) explicitly; an empty `b` means every class not in `a`.
    Classes { a: Vec<String>, b: Vec<String> },
    /// Coarse groups (CIFAR-100 super-classes, synthetic families); an empty `b` means every
    /// class outside the groups of `a`.
    Groups { a: Vec<String>, b: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitOptions {
    pub method: SplitMethod,
    /// Drives the random division and the sampling under the caps.
    pub seed: u64,
    /// At most this many training images per class (0: all).
    pub images_per_class: usize,
    /// At most this many held-out images per class (0: all).
    pub test_images_per_class: usize,
    /// Images per class carved out of the training pool for validation (0: none). They never
    /// overlap the training images, and asking for them leaves the training images unchanged
    /// when `images_per_class` caps them (they come after the capped ones in the same
    /// shuffle); without a cap they are taken off the training images.
    pub validation_images_per_class: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("{list} names class `{name}`, which the dataset does not have{} (its classes: {})", hint_suffix(hint), valid.join(", "))]
    UnknownClass {
        list: &'static str,
        name: String,
        hint: Option<String>,
        valid: Vec<String>,
    },
    #[error("{list} names group `{name}`, which the dataset does not have{} (its groups: {})", hint_suffix(hint), valid.join(", "))]
    UnknownGroup {
        list: &'static str,
        name: String,
        hint: Option<String>,
        valid: Vec<String>,
    },
    #[error("class `{0}` is in both tasks")]
    Overlap(String),
    #[error("{list} names class `{class}` twice")]
    Duplicate { list: &'static str, class: String },
    #[error("group `{0}` is in both tasks")]
    GroupOverlap(String),
    #[error("task {0} has no classes")]
    EmptyTask(char),
    #[error("a random split of {classes} classes cannot give {size_a} to A and {size_b} to B")]
    TooManyClasses {
        classes: usize,
        size_a: usize,
        size_b: usize,
    },
    #[error("this dataset has no coarse groups, so `method: groups` cannot be used (hint: CIFAR-100 and synthetic datasets have them)")]
    NoGroups,
    #[error("the train and test sets have different classes")]
    ClassesDiffer,
    #[error("task {task}: class `{class}` has no {part} images")]
    NoImages {
        task: char,
        class: String,
        part: &'static str,
    },
    #[error(
        "task {task}: class `{class}` has {available} training images, too few for \
         {validation} validation images and at least one to train on \
         (hint: lower `validation_images_per_class` or `images_per_class`)"
    )]
    NoRoomForValidation {
        task: char,
        class: String,
        available: usize,
        validation: usize,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|nearest| format!(" (hint: did you mean `{nearest}`?)"))
        .unwrap_or_default()
}

/// One task of a split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// The original label of each class, in the task's label order.
    pub classes: Vec<u32>,
    pub train: Dataset,
    pub test: Dataset,
    /// Carved out of the training pool when `validation_images_per_class` asks for it.
    pub validation: Option<Dataset>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub a: Task,
    pub b: Task,
}

// Stream labels: the class shuffle and the per-class sampling never share a stream.
const SHUFFLE_STREAM: u64 = 11;
const TRAIN_SAMPLE_STREAM: u64 = 12;
const TEST_SAMPLE_STREAM: u64 = 13;

/// Finds a class by exact name, then by case-insensitive name, then by number.
fn resolve_name(names: &[String], wanted: &str) -> Option<u32> {
    names
        .iter()
        .position(|name| name == wanted)
        .or_else(|| {
            let matches: Vec<usize> = names
                .iter()
                .enumerate()
                .filter(|(_, name)| name.eq_ignore_ascii_case(wanted))
                .map(|(index, _)| index)
                .collect();
            (matches.len() == 1).then(|| matches[0])
        })
        .or_else(|| {
            wanted
                .parse::<usize>()
                .ok()
                .filter(|&index| index < names.len())
        })
        .map(|index| index as u32)
}

/// What a name in a split's list refers to, for the error when it is unknown.
#[derive(Clone, Copy)]
enum Named {
    Class,
    Group,
}

/// The indices of `wanted` among `names` (class or group names, or their numbers).
fn resolve_names(
    names: &[String],
    list: &'static str,
    wanted: &[String],
    named: Named,
) -> Result<Vec<u32>, SplitError> {
    wanted
        .iter()
        .map(|name| {
            resolve_name(names, name).ok_or_else(|| {
                let (name, valid) = (name.clone(), names.to_vec());
                let hint =
                    nearest_name(&name, names.iter().map(String::as_str)).map(str::to_string);
                match named {
                    Named::Class => SplitError::UnknownClass {
                        list,
                        name,
                        hint,
                        valid,
                    },
                    Named::Group => SplitError::UnknownGroup {
                        list,
                        name,
                        hint,
                        valid,
                    },
                }
            })
        })
        .collect()
}

/// The first class found in both lists, if any.
fn first_shared(a: &[u32], b: &[u32]) -> Option<u32> {
    a.iter().copied().find(|class| b.contains(class))
}

/// The classes of each task, as original labels in task label order.
pub fn divide_classes(
    train: &Dataset,
    options: &SplitOptions,
) -> Result<(Vec<u32>, Vec<u32>), SplitError> {
    let classes = train.num_classes();
    let names = &train.class_names;
    let everything_but = |taken: &[u32]| {
        (0..classes as u32)
            .filter(|class| !taken.contains(class))
            .collect::<Vec<u32>>()
    };
    let (a, b) = match &options.method {
        SplitMethod::Random { size_a, size_b } => {
            let size_a = if *size_a == 0 { classes / 2 } else { *size_a };
            let size_b = if *size_b == 0 {
                classes.saturating_sub(size_a)
            } else {
                *size_b
            };
            if size_a + size_b > classes {
                return Err(SplitError::TooManyClasses {
                    classes,
                    size_a,
                    size_b,
                });
            }
            let mut order: Vec<u32> = (0..classes as u32).collect();
            Rng::derived(options.seed, &[SHUFFLE_STREAM]).shuffle(&mut order);
            let mut a = order[..size_a].to_vec();
            let mut b = order[size_a..size_a + size_b].to_vec();
            a.sort_unstable();
            b.sort_unstable();
            (a, b)
        }
        SplitMethod::Classes { a, b } => {
            let a = resolve_names(names, "classes_a", a, Named::Class)?;
            let b = if b.is_empty() {
                everything_but(&a)
            } else {
                resolve_names(names, "classes_b", b, Named::Class)?
            };
            for (list, classes) in [("classes_a", &a), ("classes_b", &b)] {
                if let Some((_, &class)) = classes
                    .iter()
                    .enumerate()
                    .find(|(position, class)| classes[..*position].contains(class))
                {
                    return Err(SplitError::Duplicate {
                        list,
                        class: names[class as usize].clone(),
                    });
                }
            }
            (a, b)
        }
        SplitMethod::Groups { a, b } => {
            let coarse = train.coarse_labels.as_ref().ok_or(SplitError::NoGroups)?;
            let group_a = resolve_names(&train.coarse_names, "groups_a", a, Named::Group)?;
            let group_b = resolve_names(&train.coarse_names, "groups_b", b, Named::Group)?;
            if let Some(shared) = first_shared(&group_a, &group_b) {
                return Err(SplitError::GroupOverlap(
                    train.coarse_names[shared as usize].clone(),
                ));
            }
            // A class belongs to the group its first image has (in CIFAR-100 each fine class
            // lies in exactly one super-class).
            let mut group_of_class: Vec<Option<u32>> = vec![None; classes];
            for (&label, &group) in train.labels.iter().zip(coarse) {
                group_of_class[label as usize].get_or_insert(group);
            }
            let in_groups = |groups: &[u32]| {
                (0..classes as u32)
                    .filter(|&class| {
                        group_of_class[class as usize].is_some_and(|group| groups.contains(&group))
                    })
                    .collect::<Vec<u32>>()
            };
            let a = in_groups(&group_a);
            let b = if group_b.is_empty() {
                everything_but(&a)
            } else {
                in_groups(&group_b)
            };
            (a, b)
        }
    };
    if let Some(shared) = first_shared(&a, &b) {
        return Err(SplitError::Overlap(names[shared as usize].clone()));
    }
    if a.is_empty() {
        return Err(SplitError::EmptyTask('A'));
    }
    if b.is_empty() {
        return Err(SplitError::EmptyTask('B'));
    }
    Ok((a, b))
}

/// The indices of `class`'s images in `set`, in the set's order.
fn members_of(set: &Dataset, class: u32) -> Vec<usize> {
    (0..set.count)
        .filter(|&index| set.labels[index] == class)
        .collect()
}

/// At most `cap` images of each class of `classes` in `set` (0: all), drawn from the class's
/// own stream.
fn sample(set: &Dataset, classes: &[u32], cap: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut chosen = Vec::new();
    for &class in classes {
        let mut members = members_of(set, class);
        if cap > 0 && members.len() > cap {
            Rng::derived(seed, &[stream, u64::from(class)]).shuffle(&mut members);
            members.truncate(cap);
        }
        chosen.extend(members);
    }
    chosen
}

/// The training images (at most `cap` per class, 0: all) and, disjoint from them, `validation`
/// images per class, both from the training pool. One shuffle per class serves both: the
/// training images are its first `cap` (exactly those `sample` would take, so adding a
/// validation set changes no training image), the validation images the next ones; without a
/// cap the validation images are the shuffle's last and the rest train.
fn sample_training(
    task: char,
    set: &Dataset,
    classes: &[u32],
    cap: usize,
    validation: usize,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), SplitError> {
    if validation == 0 {
        return Ok((
            sample(set, classes, cap, seed, TRAIN_SAMPLE_STREAM),
            Vec::new(),
        ));
    }
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for &class in classes {
        let mut members = members_of(set, class);
        let room = members.len().saturating_sub(validation);
        let training = if cap > 0 { cap.min(room) } else { room };
        if training == 0 {
            return Err(SplitError::NoRoomForValidation {
                task,
                class: set.class_names[class as usize].clone(),
                available: members.len(),
                validation,
            });
        }
        Rng::derived(seed, &[TRAIN_SAMPLE_STREAM, u64::from(class)]).shuffle(&mut members);
        train.extend_from_slice(&members[..training]);
        held.extend_from_slice(&members[training..training + validation]);
    }
    Ok((train, held))
}

/// The images `chosen` of `set`, relabelled by position in `classes`, in the set's original
/// order.
fn task_subset(set: &Dataset, classes: &[u32], mut chosen: Vec<usize>) -> Dataset {
    chosen.sort_unstable();
    let mut task = set.select(&chosen);
    let mut new_label = vec![u32::MAX; set.num_classes()];
    for (position, &class) in classes.iter().enumerate() {
        new_label[class as usize] = position as u32;
    }
    for label in &mut task.labels {
        *label = new_label[*label as usize];
    }
    task.class_names = classes
        .iter()
        .map(|&class| set.class_names[class as usize].clone())
        .collect();
    task
}

fn make_task(
    name: char,
    train: &Dataset,
    test: &Dataset,
    classes: Vec<u32>,
    options: &SplitOptions,
) -> Result<Task, SplitError> {
    let validation = options.validation_images_per_class;
    let (train_indices, validation_indices) = sample_training(
        name,
        train,
        &classes,
        options.images_per_class,
        validation,
        options.seed,
    )?;
    let task = Task {
        train: task_subset(train, &classes, train_indices),
        test: task_subset(
            test,
            &classes,
            sample(
                test,
                &classes,
                options.test_images_per_class,
                options.seed,
                TEST_SAMPLE_STREAM,
            ),
        ),
        validation: (validation > 0).then(|| task_subset(train, &classes, validation_indices)),
        classes,
    };
    // A class without training images cannot be learnt; one without test images cannot be scored.
    for (set, part) in [(&task.train, "training"), (&task.test, "held-out")] {
        if let Some(label) = set.class_counts().iter().position(|&count| count == 0) {
            return Err(SplitError::NoImages {
                task: name,
                class: set.class_names[label].clone(),
                part,
            });
        }
    }
    Ok(task)
}

/// Divides `train` and `test` (which must have the same classes) into tasks A and B.
pub fn split(train: &Dataset, test: &Dataset, options: &SplitOptions) -> Result<Split, SplitError> {
    if train.class_names != test.class_names {
        return Err(SplitError::ClassesDiffer);
    }
    let (a, b) = divide_classes(train, options)?;
    Ok(Split {
        a: make_task('A', train, test, a, options)?,
        b: make_task('B', train, test, b, options)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{generate, SyntheticOptions};
    use crate::data::TrainTest;

    fn sets() -> TrainTest {
        generate(&SyntheticOptions {
            classes: 10,
            families: 2,
            images_per_class: 12,
            test_images_per_class: 4,
            size: 8,
            ..SyntheticOptions::default()
        })
        .unwrap()
    }

    fn options(method: SplitMethod) -> SplitOptions {
        SplitOptions {
            method,
            seed: 0,
            images_per_class: 0,
            test_images_per_class: 0,
            validation_images_per_class: 0,
        }
    }

    fn random() -> SplitMethod {
        SplitMethod::Random {
            size_a: 0,
            size_b: 0,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn random_halves_are_disjoint_cover_everything_and_follow_the_seed() {
        let sets = sets();
        let split_0 = split(&sets.train, &sets.test, &options(random())).unwrap();
        assert_eq!(
            split_0,
            split(&sets.train, &sets.test, &options(random())).unwrap(),
            "deterministic"
        );
        let (a, b) = (&split_0.a.classes, &split_0.b.classes);
        assert_eq!((a.len(), b.len()), (5, 5));
        assert!(a.iter().all(|class| !b.contains(class)));
        let mut all: Vec<u32> = a.iter().chain(b).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());

        let other_seeds: Vec<Vec<u32>> = (1..6)
            .map(|seed| {
                split(
                    &sets.train,
                    &sets.test,
                    &SplitOptions {
                        seed,
                        ..options(random())
                    },
                )
                .unwrap()
                .a
                .classes
            })
            .collect();
        assert!(
            other_seeds.iter().any(|classes| classes != a),
            "some other seed divides differently"
        );
    }

    #[test]
    fn tasks_are_relabelled_and_keep_their_images() {
        let sets = sets();
        let result = split(
            &sets.train,
            &sets.test,
            &options(SplitMethod::Classes {
                a: names(&["f1c2", "f0c0"]),
                b: names(&["3"]),
            }),
        )
        .unwrap();
        assert_eq!(result.a.classes, vec![7, 0], "in the order listed");
        assert_eq!(result.a.train.class_names, vec!["f1c2", "f0c0"]);
        assert_eq!(result.a.train.count, 24);
        assert_eq!(result.a.test.count, 8);
        assert_eq!(result.b.classes, vec![3]);
        assert_eq!(result.b.train.class_names, vec!["f0c3"]);
        // Images stay in the dataset's order: class 0's images come first, and now have label 1.
        assert_eq!(result.a.train.labels[..12], [1; 12]);
        assert_eq!(result.a.train.labels[12..], [0; 12]);
        assert_eq!(result.a.train.image(0), sets.train.image(0));
        assert_eq!(result.a.train.image(12), sets.train.image(7 * 12));
        // Coarse labels travel with the images.
        assert_eq!(result.a.train.coarse_labels.as_ref().unwrap()[12], 1);
        result.a.train.validate().unwrap();
        result.b.test.validate().unwrap();
    }

    #[test]
    fn an_empty_b_list_means_every_other_class() {
        let sets = sets();
        let result = split(
            &sets.train,
            &sets.test,
            &options(SplitMethod::Classes {
                a: names(&["f0c0", "f0c1"]),
                b: Vec::new(),
            }),
        )
        .unwrap();
        assert_eq!(result.b.classes, (2..10).collect::<Vec<_>>());
    }

    #[test]
    fn groups_split_by_coarse_label() {
        let sets = sets();
        let result = split(
            &sets.train,
            &sets.test,
            &options(SplitMethod::Groups {
                a: names(&["family1"]),
                b: Vec::new(),
            }),
        )
        .unwrap();
        assert_eq!(result.a.classes, vec![5, 6, 7, 8, 9]);
        assert_eq!(result.b.classes, vec![0, 1, 2, 3, 4]);
        assert!(result
            .a
            .train
            .coarse_labels
            .as_ref()
            .unwrap()
            .iter()
            .all(|&group| group == 1));

        let mut plain = sets.train.clone();
        plain.coarse_labels = None;
        plain.coarse_names.clear();
        assert_eq!(
            divide_classes(
                &plain,
                &options(SplitMethod::Groups {
                    a: names(&["family1"]),
                    b: Vec::new()
                })
            ),
            Err(SplitError::NoGroups)
        );
    }

    #[test]
    fn caps_sample_the_same_images_of_a_class_whatever_its_task() {
        let sets = sets();
        let capped = |method| SplitOptions {
            images_per_class: 5,
            test_images_per_class: 2,
            seed: 3,
            ..options(method)
        };
        let first = split(
            &sets.train,
            &sets.test,
            &capped(SplitMethod::Classes {
                a: names(&["f0c0", "f0c1"]),
                b: names(&["f0c2"]),
            }),
        )
        .unwrap();
        let second = split(
            &sets.train,
            &sets.test,
            &capped(SplitMethod::Classes {
                a: names(&["f0c2"]),
                b: names(&["f0c1"]),
            }),
        )
        .unwrap();
        assert_eq!(first.a.train.class_counts(), vec![5, 5]);
        assert_eq!(first.a.test.class_counts(), vec![2, 2]);
        assert_eq!(
            first.b.train.pixels, second.a.train.pixels,
            "class f0c2 got the same five images in both splits"
        );
        let other_seed = split(
            &sets.train,
            &sets.test,
            &SplitOptions {
                seed: 4,
                ..capped(SplitMethod::Classes {
                    a: names(&["f0c2"]),
                    b: names(&["f0c1"]),
                })
            },
        )
        .unwrap();
        assert_ne!(other_seed.a.train.pixels, second.a.train.pixels);
    }

    #[test]
    fn validation_images_are_disjoint_from_training_and_leave_it_unchanged() {
        let sets = sets();
        let method = || SplitMethod::Classes {
            a: names(&["f0c0", "f0c1"]),
            b: names(&["f0c2"]),
        };
        let capped = |validation| SplitOptions {
            images_per_class: 5,
            test_images_per_class: 2,
            validation_images_per_class: validation,
            seed: 3,
            ..options(method())
        };
        let without = split(&sets.train, &sets.test, &capped(0)).unwrap();
        let with = split(&sets.train, &sets.test, &capped(4)).unwrap();
        assert_eq!(without.a.validation, None);
        assert_eq!(
            with.a.train, without.a.train,
            "the training images are unchanged"
        );
        assert_eq!(with.a.test, without.a.test);
        let validation = with.a.validation.as_ref().unwrap();
        assert_eq!(validation.class_counts(), vec![4, 4]);
        assert_eq!(validation.class_names, with.a.train.class_names);
        let images = |set: &Dataset| -> Vec<Vec<u8>> {
            (0..set.count)
                .map(|index| set.image(index).to_vec())
                .collect()
        };
        let training = images(&with.a.train);
        assert!(
            images(validation)
                .iter()
                .all(|image| !training.contains(image)),
            "no validation image is a training image"
        );
        // Without a cap the validation images come off the training pool.
        let uncapped = split(
            &sets.train,
            &sets.test,
            &SplitOptions {
                validation_images_per_class: 3,
                seed: 3,
                ..options(method())
            },
        )
        .unwrap();
        assert_eq!(uncapped.a.train.class_counts(), vec![9, 9]);
        assert_eq!(uncapped.a.validation.unwrap().class_counts(), vec![3, 3]);
        // Asking for every image leaves none to train on.
        let error = split(
            &sets.train,
            &sets.test,
            &SplitOptions {
                validation_images_per_class: 12,
                ..options(method())
            },
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("lower `validation_images_per_class`"),
            "{error}"
        );
    }

    #[test]
    fn unknown_class_names_list_the_valid_ones_with_a_suggestion() {
        let sets = sets();
        let error = split(
            &sets.train,
            &sets.test,
            &options(SplitMethod::Classes {
                a: names(&["f0c9x"]),
                b: Vec::new(),
            }),
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("classes_a names class `f0c9x`, which the dataset does not have (hint: did you mean `f0c0`?)"), "{error}");
        assert!(
            error.ends_with(
                "(its classes: f0c0, f0c1, f0c2, f0c3, f0c4, f1c0, f1c1, f1c2, f1c3, f1c4)"
            ),
            "{error}"
        );
        let error = split(
            &sets.train,
            &sets.test,
            &options(SplitMethod::Groups {
                a: names(&["famly0"]),
                b: Vec::new(),
            }),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(error, "groups_a names group `famly0`, which the dataset does not have (hint: did you mean `family0`?) (its groups: family0, family1)");
    }

    #[test]
    fn names_match_case_insensitively_or_by_number() {
        let sets = sets();
        let result = split(
            &sets.train,
            &sets.test,
            &options(SplitMethod::Classes {
                a: names(&["F1C0", "2"]),
                b: names(&["9"]),
            }),
        )
        .unwrap();
        assert_eq!(result.a.classes, vec![5, 2]);
    }

    #[test]
    fn overlaps_and_empty_tasks_are_errors() {
        let sets = sets();
        let overlap = SplitMethod::Classes {
            a: names(&["f0c0", "f0c1"]),
            b: names(&["1"]),
        };
        assert_eq!(
            split(&sets.train, &sets.test, &options(overlap)).unwrap_err(),
            SplitError::Overlap("f0c1".into())
        );
        let twice = SplitMethod::Classes {
            a: names(&["f0c0", "0"]),
            b: Vec::new(),
        };
        assert_eq!(
            split(&sets.train, &sets.test, &options(twice))
                .unwrap_err()
                .to_string(),
            "classes_a names class `f0c0` twice"
        );
        let all = SplitMethod::Groups {
            a: names(&["family0", "family1"]),
            b: Vec::new(),
        };
        assert_eq!(
            split(&sets.train, &sets.test, &options(all)).unwrap_err(),
            SplitError::EmptyTask('B')
        );
        let too_many = SplitMethod::Random {
            size_a: 6,
            size_b: 5,
        };
        assert!(matches!(
            split(&sets.train, &sets.test, &options(too_many)),
            Err(SplitError::TooManyClasses { .. })
        ));
    }
}

//! Resolution of a requirement set against the mirror: which file of which version of every
//! distribution an environment gets, dependencies of dependencies included, for one
//! interpreter.
//!
//! The solver is `PubGrub` (the `pubgrub` crate, uv's resolver); this module only tells it what
//! the mirror offers. A version is a candidate when the mirror has a wheel the interpreter can
//! install (by its tags) or an sdist; its dependencies are the `Requires-Dist` of the file that
//! would be installed, markers evaluated for the interpreter, and a `Requires-Python` it does
//! not meet makes the version unusable. Distributions the target environment already has
//! (StackStorm's own, for runners) are fixed at their installed version. A requirement's
//! versions are the finite set of mirror versions it allows, so no specifier algebra is
//! needed, and pre-releases follow pip's rule per requirement.
//!
//! When there is no solution, the derivation `PubGrub` returns is turned into one chain per
//! cause, from the requirement line to the distribution that cannot be had:
//! `requirements.txt:1 fxtwo -> fxdep>=2 : mirror has fxdep 1.0, 1.1`.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::rc::Rc;
use std::sync::Arc;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, PackageName, Requirement, VersionOrUrl};
use pubgrub::{
    Dependencies, DependencyConstraints, DependencyProvider, DerivationTree, External,
    PackageResolutionStatistics, PubGrubError, Ranges, Reporter as _,
};

use super::metadata::{DistMetadata, MetadataCache};
use super::{DistKind, MirrorError, MirrorFile, MirrorIndex, Prereleases};
use crate::python::PythonIdentity;

/// A requirement of the set being resolved, and where it was written.
#[derive(Debug, Clone)]
pub struct RootRequirement {
    pub requirement: Requirement,
    /// `requirements.txt:3`, `[stackstorm] base_requirements:1`, `[[runner]] clush_runner`.
    pub origin: String,
}

/// What a resolution asks for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Markers already evaluated: every one applies.
    pub requirements: &'a [RootRequirement],
    /// `-c` lines: they limit the versions of a distribution the set gets, never add one.
    pub constraints: &'a [RootRequirement],
    pub prereleases: Prereleases,
    pub python: &'a PythonIdentity,
    /// Distributions the target environment already has, at their installed version; they are
    /// never taken from the mirror.
    pub provided: &'a BTreeMap<PackageName, Version>,
}

/// A successful resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The mirror files to install, by distribution name.
    pub files: Vec<&'a MirrorFile>,
    /// The provided distributions the set uses, by name.
    pub provided: Vec<(PackageName, Version)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Each chain is one reason, e.g. `requirements.txt:1 fxtwo -> fxdep>=2 : mirror has
    /// fxdep 1.0, 1.1`.
    #[error("{}", chains.join("; "))]
    Unsatisfiable { chains: Vec<String> },
    /// An sdist of the set whose build requirements the mirror cannot meet.
    #[error("The sdist `{file_name}` cannot be built offline: {}", chains.join("; "))]
    BuildBackend {
        file_name: String,
        /// The distribution and version the sdist is.
        dist: String,
        chains: Vec<String>,
    },
    #[error(transparent)]
    Mirror(#[from] MirrorError),
}

impl crate::diagnostics::Diagnose for ResolveError {
    fn hint(&self) -> Option<String> {
        match self {
            ResolveError::Unsatisfiable { .. } => Some(
                "add the missing versions to the mirror folder, or change the requirement"
                    .to_string(),
            ),
            ResolveError::BuildBackend { dist, .. } => Some(format!(
                "add a wheel of what it builds with to the mirror, or a wheel of {dist} itself \
                 (`pip wheel --no-deps` on a machine that can build it)"
            )),
            ResolveError::Mirror(_) => None,
        }
    }

    fn diagnostic_source(&self) -> Option<&dyn crate::diagnostics::Diagnose> {
        match self {
            ResolveError::Mirror(err) => Some(err),
            _ => None,
        }
    }
}

/// Checks that every sdist of `resolved` can be built from the mirror: pip installs its build
/// requirements from the mirror too (build isolation), and needs them as wheels.
pub fn check_build_backends(
    index: &MirrorIndex,
    metadata: &MetadataCache,
    resolved: &Resolved<'_>,
    python: &PythonIdentity,
) -> Vec<ResolveError> {
    let mut errors = Vec::new();
    let no_provided = BTreeMap::new();
    for sdist in resolved.files.iter().filter(|f| f.kind == DistKind::Sdist) {
        let build_error = |chains| ResolveError::BuildBackend {
            file_name: sdist.file_name.clone(),
            dist: format!("{} {}", sdist.name, sdist.version),
            chains,
        };
        let requires = match metadata.get(sdist) {
            Ok(found) => found.build_requires.clone(),
            Err(err) => {
                errors.push(err.into());
                continue;
            }
        };
        let mut requirements = Vec::new();
        for line in &requires {
            match line.parse::<Requirement>() {
                Ok(requirement) if requirement.marker.evaluate(python.markers(), &[]) => {
                    requirements.push(RootRequirement {
                        requirement,
                        origin: format!("{} builds with", sdist.file_name),
                    });
                }
                Ok(_) => {}
                Err(err) => {
                    errors.push(build_error(vec![format!(
                        "`{line}` in `[build-system] requires` is not a PEP 508 requirement: {err}"
                    )]));
                }
            }
        }
        let request = Request {
            requirements: &requirements,
            constraints: &[],
            prereleases: Prereleases::IfRequested,
            python,
            provided: &no_provided,
        };
        match resolve(index, metadata, request) {
            Ok(build) => {
                let sdists: Vec<String> = build
                    .files
                    .iter()
                    .filter(|file| file.kind == DistKind::Sdist)
                    .map(|file| format!("{} is only an sdist in the mirror", file.name))
                    .collect();
                if !sdists.is_empty() {
                    errors.push(build_error(sdists));
                }
            }
            Err(ResolveError::Unsatisfiable { chains }) => errors.push(build_error(chains)),
            Err(err) => errors.push(err),
        }
    }
    errors
}

/// Resolves `request` against `index`, reading metadata through `metadata`.
pub fn resolve<'a>(
    index: &'a MirrorIndex,
    metadata: &MetadataCache,
    request: Request<'_>,
) -> Result<Resolved<'a>, ResolveError> {
    let provider = Provider {
        index,
        metadata,
        request,
        candidates: RefCell::default(),
        edges: RefCell::default(),
    };
    match pubgrub::resolve(&provider, Node::Root, Version::new([0])) {
        Ok(selected) => {
            let mut files = Vec::new();
            let mut provided_used = Vec::new();
            for (node, version) in selected.iter() {
                let Node::Dist(name) = node else { continue };
                match provider.candidates(name).get(version) {
                    Some(Candidate::File(file)) => files.push(*file),
                    Some(Candidate::Provided) => {
                        provided_used.push((name.clone(), version.clone()));
                    }
                    None => unreachable!("the solver picks among the candidates"),
                }
            }
            files.sort_by(|a, b| a.name.cmp(&b.name));
            provided_used.sort();
            Ok(Resolved {
                files,
                provided: provided_used,
            })
        }
        Err(PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            Err(ResolveError::Unsatisfiable {
                chains: provider.explain(&tree),
            })
        }
        Err(
            PubGrubError::ErrorRetrievingDependencies { source, .. }
            | PubGrubError::ErrorChoosingVersion { source, .. }
            | PubGrubError::ErrorInShouldCancel(source),
        ) => Err(source.into()),
    }
}

/// A package as the solver sees it: the requirement set itself, a distribution, or a
/// distribution with an extra (which depends on the distribution at the same version).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Node {
    Root,
    Dist(PackageName),
    Extra(PackageName, ExtraName),
}

impl Node {
    fn dist(&self) -> Option<&PackageName> {
        match self {
            Node::Root => None,
            Node::Dist(name) | Node::Extra(name, _) => Some(name),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Root => f.write_str("the requirements"),
            Node::Dist(name) => write!(f, "{name}"),
            Node::Extra(name, extra) => write!(f, "{name}[{extra}]"),
        }
    }
}

/// What a candidate version of a distribution would install.
#[derive(Debug, Clone, Copy)]
enum Candidate<'a> {
    File(&'a MirrorFile),
    /// Already in the target environment.
    Provided,
}

/// A requirement that led from one node to another, as written, for error chains.
#[derive(Debug, Clone)]
struct Edge {
    /// Where a requirement of the set was written; `None` for a dependency's dependency.
    origin: Option<String>,
    text: String,
    /// Pre-releases that satisfy the specifiers but that pip's rule leaves out.
    held_back: Vec<String>,
}

type Set = Ranges<Version>;

struct Provider<'a, 'r> {
    index: &'a MirrorIndex,
    metadata: &'r MetadataCache,
    request: Request<'r>,
    /// Per distribution: version -> what it would install.
    candidates: RefCell<HashMap<PackageName, Rc<BTreeMap<Version, Candidate<'a>>>>>,
    edges: RefCell<HashMap<(Node, Node), Edge>>,
}

impl<'a> Provider<'a, '_> {
    /// The usable versions of `name`: its installed version when the target environment
    /// provides it, else every mirror version with a wheel for the interpreter (the one it
    /// prefers) or an sdist.
    fn candidates(&self, name: &PackageName) -> Rc<BTreeMap<Version, Candidate<'a>>> {
        if let Some(found) = self.candidates.borrow().get(name) {
            return Rc::clone(found);
        }
        let mut candidates = BTreeMap::new();
        if let Some(version) = self.request.provided.get(name) {
            candidates.insert(version.clone(), Candidate::Provided);
        } else {
            let mut best: BTreeMap<&Version, (usize, &MirrorFile)> = BTreeMap::new();
            for file in self.index.files_of(name) {
                let rank = match file.kind {
                    DistKind::Wheel => file
                        .tags
                        .iter()
                        .filter_map(|tag| self.request.python.tag_preference(tag))
                        .min(),
                    // After every wheel, as pip prefers wheels.
                    DistKind::Sdist => Some(usize::MAX),
                };
                let Some(rank) = rank else { continue };
                let entry = best.entry(&file.version).or_insert((rank, file));
                if rank < entry.0 {
                    *entry = (rank, file);
                }
            }
            candidates.extend(
                best.into_iter()
                    .map(|(version, (_, file))| (version.clone(), Candidate::File(file))),
            );
        }
        let candidates = Rc::new(candidates);
        self.candidates
            .borrow_mut()
            .insert(name.clone(), Rc::clone(&candidates));
        candidates
    }

    /// The versions of `requirement`'s distribution it allows, as a solver set, and the
    /// pre-releases it would allow but for pip's rule.
    fn allowed(&self, requirement: &Requirement) -> Result<(Set, Vec<String>), MirrorError> {
        let any_version = VersionSpecifiers::empty();
        let specifiers = match &requirement.version_or_url {
            None => &any_version,
            Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers,
            Some(VersionOrUrl::Url(_)) => {
                return Err(MirrorError::UrlRequirement {
                    requirement: requirement.to_string(),
                });
            }
        };
        let candidates = self.candidates(&requirement.name);
        let prereleases =
            super::allows_prereleases(specifiers, candidates.keys(), self.request.prereleases);
        let constraints: Vec<&VersionSpecifiers> = self
            .request
            .constraints
            .iter()
            .filter(|constraint| constraint.requirement.name == requirement.name)
            .filter_map(|constraint| match &constraint.requirement.version_or_url {
                Some(VersionOrUrl::VersionSpecifier(specifiers)) => Some(specifiers),
                _ => None,
            })
            .collect();
        let (allowed, held_back): (Vec<&Version>, Vec<&Version>) = candidates
            .keys()
            .filter(|version| specifiers.contains(version))
            .filter(|version| constraints.iter().all(|c| c.contains(version)))
            .partition(|version| prereleases || !version.any_prerelease());
        let set = allowed.into_iter().fold(Set::empty(), |set, version| {
            set.union(&Set::singleton(version.clone()))
        });
        Ok((set, held_back.iter().map(ToString::to_string).collect()))
    }

    /// Adds `requirement` of `from` to `constraints`: its distribution, and each of its extras
    /// at the same versions.
    fn require(
        &self,
        from: &Node,
        requirement: &Requirement,
        origin: Option<&str>,
        constraints: &mut Vec<(Node, Set)>,
    ) -> Result<(), MirrorError> {
        let (set, held_back) = self.allowed(requirement)?;
        let text = requirement_text(requirement);
        let targets = std::iter::once(Node::Dist(requirement.name.clone())).chain(
            requirement
                .extras
                .iter()
                .map(|extra| Node::Extra(requirement.name.clone(), extra.clone())),
        );
        for target in targets {
            self.edges
                .borrow_mut()
                .entry((from.clone(), target.clone()))
                .or_insert_with(|| Edge {
                    origin: origin.map(str::to_string),
                    text: text.clone(),
                    held_back: held_back.clone(),
                });
            match constraints.iter_mut().find(|(node, _)| *node == target) {
                Some((_, existing)) => *existing = existing.intersection(&set),
                None => constraints.push((target, set.clone())),
            }
        }
        Ok(())
    }

    fn metadata_of(&self, name: &PackageName, version: &Version) -> Option<Arc<DistMetadata>> {
        match self.candidates(name).get(version) {
            Some(Candidate::File(file)) => self.metadata.get(file).ok(),
            _ => None,
        }
    }

    /// One chain per reason the set cannot be resolved.
    fn explain(&self, tree: &DerivationTree<Node, Set, String>) -> Vec<String> {
        let mut externals = Vec::new();
        collect_externals(tree, &mut externals);
        let mut graph: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
        // (package that cannot be had, the node requiring it if any, the cause)
        let mut dead_ends: Vec<(Node, Option<Node>, String)> = Vec::new();
        for external in &externals {
            match external {
                External::FromDependencyOf(from, _, to, set) => {
                    graph.entry(from.clone()).or_default().insert(to.clone());
                    let candidates = to.dist().map(|name| self.candidates(name));
                    let none_allowed = candidates
                        .is_some_and(|candidates| !candidates.keys().any(|v| set.contains(v)));
                    if none_allowed {
                        let mut cause = self.holdings(to);
                        if let Some(edge) = self.edges.borrow().get(&(from.clone(), to.clone()))
                            && !edge.held_back.is_empty()
                        {
                            let _ = write!(
                                cause,
                                "; pip takes a pre-release ({}) only when the requirement names \
                                 one, e.g. `{}=={}`",
                                edge.held_back.join(", "),
                                to,
                                edge.held_back.last().expect("not empty")
                            );
                        }
                        dead_ends.push((to.clone(), Some(from.clone()), cause));
                    }
                }
                External::NoVersions(node, _) => {
                    dead_ends.push((node.clone(), None, self.holdings(node)));
                }
                External::Custom(node, set, reason) => {
                    let versions: Vec<String> = node
                        .dist()
                        .map(|name| self.candidates(name))
                        .iter()
                        .flat_map(|candidates| candidates.keys())
                        .filter(|version| set.contains(version))
                        .map(ToString::to_string)
                        .collect();
                    dead_ends.push((
                        node.clone(),
                        None,
                        format!("{node} {} {reason}", versions.join(", ")),
                    ));
                }
                External::NotRoot(..) => {}
            }
        }
        let mut chains: Vec<String> = Vec::new();
        let push = |chains: &mut Vec<String>, chain: String| {
            if !chains.contains(&chain) {
                chains.push(chain);
            }
        };
        for (node, parent, cause) in &dead_ends {
            let path = match parent {
                Some(parent) => Self::path(&graph, parent).map(|mut path| {
                    path.push((parent.clone(), node.clone()));
                    path
                }),
                None => Self::path(&graph, node),
            };
            if let Some(path) = path {
                push(&mut chains, format!("{} : {cause}", self.describe(&path)));
            }
        }
        if chains.is_empty() {
            // No dead end: requirements that exclude each other. Show every way to the
            // distribution more than one node constrains.
            let mut requiring: BTreeMap<&Node, Vec<&Node>> = BTreeMap::new();
            for (from, targets) in &graph {
                for target in targets {
                    requiring.entry(target).or_default().push(from);
                }
            }
            for (target, froms) in requiring.into_iter().filter(|(_, f)| f.len() > 1) {
                let ways: Vec<String> = froms
                    .iter()
                    .filter_map(|from| {
                        let mut path = Self::path(&graph, from)?;
                        path.push(((*from).clone(), target.clone()));
                        Some(self.describe(&path))
                    })
                    .collect();
                push(
                    &mut chains,
                    format!(
                        "{} : no version satisfies all of them; {}",
                        ways.join(" and "),
                        self.holdings(target)
                    ),
                );
            }
        }
        if chains.is_empty() {
            // Not expected; PubGrub's own words rather than nothing.
            chains.push(pubgrub::DefaultStringReporter::report(tree));
        }
        chains
    }

    /// The edges from the root to `to`, shortest first.
    fn path(graph: &BTreeMap<Node, BTreeSet<Node>>, to: &Node) -> Option<Vec<(Node, Node)>> {
        let mut came_from: HashMap<&Node, &Node> = HashMap::new();
        let mut queue = VecDeque::from([&Node::Root]);
        while let Some(node) = queue.pop_front() {
            if node == to {
                let mut path = Vec::new();
                let mut at = node;
                while let Some(previous) = came_from.get(at) {
                    path.push(((*previous).clone(), at.clone()));
                    at = previous;
                }
                path.reverse();
                return Some(path);
            }
            for next in graph.get(node).into_iter().flatten() {
                if *next != Node::Root && !came_from.contains_key(next) {
                    came_from.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        None
    }

    /// `requirements.txt:1 fxtwo -> fxdep>=2`.
    fn describe(&self, path: &[(Node, Node)]) -> String {
        let edges = self.edges.borrow();
        let mut words = Vec::new();
        for (from, to) in path {
            // An extra's edge to its own distribution has no words.
            if let Some(edge) = edges.get(&(from.clone(), to.clone())) {
                if let Some(origin) = &edge.origin {
                    words.push(origin.clone());
                }
                if words.len() > 1 || edge.origin.is_none() {
                    words.push("->".to_string());
                }
                words.push(edge.text.clone());
            }
        }
        words.join(" ")
    }

    /// "mirror has fxdep 1.0, 1.1", and why versions the mirror has are not candidates.
    fn holdings(&self, node: &Node) -> String {
        let Some(name) = node.dist() else {
            return String::new();
        };
        if let Some(version) = self.request.provided.get(name) {
            return format!("StackStorm's environment has {name} {version}");
        }
        let mut text = super::mirror_holds(
            name.as_ref(),
            &self
                .index
                .versions_of(name)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        );
        let candidates = self.candidates(name);
        let unusable: Vec<String> = self
            .index
            .versions_of(name)
            .into_iter()
            .filter(|version| !candidates.contains_key(*version))
            .map(ToString::to_string)
            .collect();
        if !unusable.is_empty() {
            let _ = write!(
                text,
                " ({} only as wheels {} cannot install)",
                unusable.join(", "),
                self.request.python.label()
            );
        }
        text
    }
}

impl DependencyProvider for Provider<'_, '_> {
    type P = Node;
    type V = Version;
    type VS = Set;
    type M = String;
    type Err = MirrorError;
    type Priority = (u32, Reverse<usize>);

    fn prioritize(
        &self,
        package: &Node,
        range: &Set,
        statistics: &PackageResolutionStatistics,
    ) -> Self::Priority {
        let count = match package.dist() {
            None => 1,
            Some(name) => self
                .candidates(name)
                .keys()
                .filter(|version| range.contains(version))
                .count(),
        };
        if count == 0 {
            return (u32::MAX, Reverse(0));
        }
        (statistics.conflict_count(), Reverse(count))
    }

    fn choose_version(&self, package: &Node, range: &Set) -> Result<Option<Version>, MirrorError> {
        Ok(match package.dist() {
            None => Some(Version::new([0])),
            Some(name) => self
                .candidates(name)
                .keys()
                .rev()
                .find(|version| range.contains(version))
                .cloned(),
        })
    }

    fn get_dependencies(
        &self,
        package: &Node,
        version: &Version,
    ) -> Result<Dependencies<Node, Set, String>, MirrorError> {
        let mut constraints = Vec::new();
        let python = self.request.python;
        match package {
            Node::Root => {
                for root in self.request.requirements {
                    self.require(
                        package,
                        &root.requirement,
                        Some(&root.origin),
                        &mut constraints,
                    )?;
                }
            }
            Node::Dist(name) => {
                let Some(metadata) = self.metadata_of(name, version) else {
                    // Provided by the target environment: its dependencies are its own business.
                    if let Some(Candidate::File(file)) = self.candidates(name).get(version) {
                        self.metadata.get(file)?;
                    }
                    return Ok(Dependencies::Available(DependencyConstraints::default()));
                };
                if let Some(requires_python) = &metadata.requires_python {
                    let specifiers: VersionSpecifiers = requires_python.parse().map_err(|_| {
                        self.bad_metadata(name, version, format!("`Requires-Python: {requires_python}` is not a PEP 440 specifier set"))
                    })?;
                    if !specifiers.contains(python.version()) {
                        return Ok(Dependencies::Unavailable(format!(
                            "requires Python {requires_python} ({} is {})",
                            python.path().display(),
                            python.version()
                        )));
                    }
                }
                for line in &metadata.requires_dist {
                    let requirement = self.parse_dependency(name, version, line)?;
                    if requirement.marker.evaluate(python.markers(), &[]) {
                        self.require(package, &requirement, None, &mut constraints)?;
                    }
                }
            }
            Node::Extra(name, extra) => {
                constraints.push((Node::Dist(name.clone()), Set::singleton(version.clone())));
                if let Some(metadata) = self.metadata_of(name, version) {
                    for line in &metadata.requires_dist {
                        let requirement = self.parse_dependency(name, version, line)?;
                        let marker = &requirement.marker;
                        if marker.evaluate(python.markers(), std::slice::from_ref(extra))
                            && !marker.evaluate(python.markers(), &[])
                        {
                            self.require(package, &requirement, None, &mut constraints)?;
                        }
                    }
                }
            }
        }
        Ok(Dependencies::Available(constraints.into_iter().collect()))
    }
}

impl Provider<'_, '_> {
    fn parse_dependency(
        &self,
        name: &PackageName,
        version: &Version,
        line: &str,
    ) -> Result<Requirement, MirrorError> {
        line.parse().map_err(|err| {
            self.bad_metadata(
                name,
                version,
                format!("`Requires-Dist: {line}` is not a PEP 508 requirement: {err}"),
            )
        })
    }

    fn bad_metadata(&self, name: &PackageName, version: &Version, reason: String) -> MirrorError {
        let path = match self.candidates(name).get(version) {
            Some(Candidate::File(file)) => file.path.clone(),
            _ => self.index.dir.clone(),
        };
        MirrorError::Metadata { path, reason }
    }
}

/// `fxdep[extra]>=2`: a requirement without its marker (already evaluated).
fn requirement_text(requirement: &Requirement) -> String {
    let mut text = requirement.name.to_string();
    if !requirement.extras.is_empty() {
        let extras: Vec<String> = requirement.extras.iter().map(ToString::to_string).collect();
        let _ = write!(text, "[{}]", extras.join(","));
    }
    if let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &requirement.version_or_url {
        text.push_str(&specifiers.to_string());
    }
    text
}

fn collect_externals<'t>(
    tree: &'t DerivationTree<Node, Set, String>,
    into: &mut Vec<&'t External<Node, Set, String>>,
) {
    match tree {
        DerivationTree::External(external) => into.push(external),
        DerivationTree::Derived(derived) => {
            collect_externals(&derived.cause1, into);
            collect_externals(&derived.cause2, into);
        }
    }
}

//! [`expand`]: from the paths the user named to the files to send.

use std::fs;
use std::path::{Path, PathBuf};

use crate::FileError;

/// One file to send: where it is on disk and the name it is offered under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file on disk.
    pub path: PathBuf,
    /// The name offered to the peer: the file's name, or for a file found in a
    /// directory its path relative to the directory's parent, `/`-separated
    /// (`photos/2024/a.jpg`), so the receiver can rebuild the tree.
    pub name: String,
}

/// The files to send for `paths`, in order: a file is itself; a directory is every
/// regular file below it, recursively and sorted, named starting with the directory's
/// own name. Symbolic links inside a directory are not followed (they could loop, or
/// lead out of the tree the user meant to send); a path named directly is followed,
/// since the user chose it.
///
/// Errors: a missing path is [`FileError::NotFound`], one that is neither a file nor a
/// directory is [`FileError::NotAFile`], a directory without any regular file is
/// [`FileError::EmptyDirectory`], and an unreadable one is [`FileError::Read`].
pub fn expand(paths: &[PathBuf]) -> Result<Vec<Source>, FileError> {
    let mut sources = Vec::new();
    for path in paths {
        let metadata = fs::metadata(path).map_err(|e| FileError::read(path, e))?;
        if metadata.is_file() {
            sources.push(Source {
                path: path.clone(),
                name: own_name(path, "file"),
            });
        } else if metadata.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut vec![own_name(path, "files")], &mut found)?;
            if found.is_empty() {
                return Err(FileError::EmptyDirectory(path.clone()));
            }
            found.sort_by(|a, b| a.0.cmp(&b.0));
            sources.extend(found.into_iter().map(|(components, path)| Source {
                path,
                name: components.join("/"),
            }));
        } else {
            return Err(FileError::NotAFile(path.clone()));
        }
    }
    Ok(sources)
}

/// The last component of `path`; for paths that end in `.` or `..` (or are a root),
/// the last component of what they resolve to, and `fallback` if there is none.
fn own_name(path: &Path, fallback: &str) -> String {
    let resolved;
    let name = match path.file_name() {
        Some(name) => Some(name),
        None => {
            resolved = fs::canonicalize(path).ok();
            resolved.as_deref().and_then(Path::file_name)
        }
    };
    name.map_or_else(
        || fallback.to_owned(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Adds every regular file below `dir` to `found`, each with its name's components
/// (`prefix` followed by the path below `dir`), without following symbolic links.
fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    found: &mut Vec<(Vec<String>, PathBuf)>,
) -> Result<(), FileError> {
    let entries = fs::read_dir(dir).map_err(|e| FileError::read(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| FileError::read(dir, e))?;
        let path = entry.path();
        // `file_type` does not follow symbolic links.
        let kind = entry.file_type().map_err(|e| FileError::read(&path, e))?;
        prefix.push(entry.file_name().to_string_lossy().into_owned());
        if kind.is_dir() {
            walk(&path, prefix, found)?;
        } else if kind.is_file() {
            found.push((prefix.clone(), path));
        }
        prefix.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sources: &[Source]) -> Vec<&str> {
        sources.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn a_nested_directory_becomes_its_files_sorted_and_named_from_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let photos = tmp.path().join("photos");
        fs::create_dir_all(photos.join("2024/summer")).unwrap();
        fs::create_dir_all(photos.join("empty")).unwrap();
        fs::write(photos.join("b.jpg"), b"b").unwrap();
        fs::write(photos.join("2024/a.jpg"), b"a").unwrap();
        fs::write(photos.join("2024/summer/z.jpg"), b"z").unwrap();
        fs::write(photos.join("2024/c.jpg"), b"c").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(photos.join("b.jpg"), photos.join("link.jpg")).unwrap();
            std::os::unix::fs::symlink(tmp.path(), photos.join("loop")).unwrap();
        }
        let single = tmp.path().join("note.txt");
        fs::write(&single, b"note").unwrap();

        let sources = expand(&[photos.clone(), single.clone()]).unwrap();
        assert_eq!(
            names(&sources),
            [
                "photos/2024/a.jpg",
                "photos/2024/c.jpg",
                "photos/2024/summer/z.jpg",
                "photos/b.jpg",
                "note.txt"
            ]
        );
        assert_eq!(sources[0].path, photos.join("2024").join("a.jpg"));
        assert_eq!(sources[4].path, single);
    }

    #[test]
    fn a_directory_named_dot_is_named_after_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let album = tmp.path().join("album");
        fs::create_dir(&album).unwrap();
        fs::write(album.join("x"), b"x").unwrap();
        let sources = expand(&[album.join(".")]).unwrap();
        assert_eq!(names(&sources), ["album/x"]);
    }

    #[test]
    fn missing_empty_and_special_paths_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope.txt");
        let err = expand(std::slice::from_ref(&missing)).unwrap_err();
        assert!(
            matches!(&err, FileError::NotFound(p) if *p == missing),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("no such file: {}", missing.display())
        );

        let empty = tmp.path().join("empty");
        fs::create_dir_all(empty.join("deeper")).unwrap();
        let err = expand(std::slice::from_ref(&empty)).unwrap_err();
        assert!(
            matches!(&err, FileError::EmptyDirectory(p) if *p == empty),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("nothing to send in {}", empty.display())
        );

        #[cfg(unix)]
        {
            let err = expand(&[PathBuf::from("/dev/null")]).unwrap_err();
            assert!(matches!(err, FileError::NotAFile(_)), "{err:?}");
        }
    }
}

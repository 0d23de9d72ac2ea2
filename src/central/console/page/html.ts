/** The console's one HTML page: the alarm queue on the left, the tabs on the right. */
export const INDEX_HTML = `<!doctype html>
<html lang="es">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Vigía — central 1457</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <h1>Vigía <span data-t="center">Central 1457</span></h1>
  <p id="link" data-state="connecting"></p>
  <div id="who" hidden><span id="user"></span> · <button id="logout" type="button" data-t="logout">Salir</button></div>
  <button id="lang" type="button">English</button>
</header>
<main>
  <form id="login" hidden>
    <h2 data-t="login">Ingreso de operador</h2>
    <label><span data-t="user">Usuario</span> <input name="user" autocomplete="username" required></label>
    <label><span data-t="password">Contraseña</span> <input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" data-t="enter">Entrar</button>
    <p id="login-error" role="alert"></p>
  </form>
  <section id="console" hidden>
    <section id="alarms-box">
      <h2><span data-t="alarms">Alarmas</span> <span id="open-count" class="count"></span></h2>
      <ol id="alarms"></ol>
    </section>
    <section id="side">
      <nav id="tabs">
        <button type="button" data-tab="map" data-t="map">Mapa</button>
        <button type="button" data-tab="devices" data-t="devices">Equipos</button>
        <button type="button" data-tab="search" data-t="search">Búsqueda</button>
        <button type="button" data-tab="hotlist" data-t="hotlist">Encargos</button>
        <button type="button" data-tab="users" data-t="users" data-role="admin">Usuarios</button>
        <button type="button" data-tab="audit" data-t="audit" data-role="supervisor">Auditoría</button>
      </nav>
      <section id="tab-map" class="tab">
        <svg id="map" viewBox="0 0 600 420" role="img" aria-label="map"></svg>
        <p class="legend"><span class="dot online"></span> <span data-t="online">en línea</span> <span class="dot offline"></span> <span data-t="offline">fuera de línea</span> <span class="dot ring"></span> <span data-t="openAlarm">alarma abierta</span></p>
      </section>
      <section id="tab-devices" class="tab" hidden>
        <table id="devices"><thead><tr><th data-t="device">Equipo</th><th data-t="state">Estado</th><th data-t="outbox">Cola</th><th data-t="clock">Reloj</th><th data-t="last">Último evento</th><th data-t="telemetry">Última telemetría</th><th data-t="cameras">Cámaras</th><th data-t="hotlist">Encargos</th></tr></thead><tbody></tbody></table>
      </section>
      <section id="tab-search" class="tab" hidden>
        <form id="search">
          <label><span data-t="plate">Patente</span> <input name="plate" autocomplete="off" maxlength="12"></label>
          <label><span data-t="hashKey">Clave de hash (lecturas con hash)</span> <input name="key" type="password" autocomplete="off"></label>
          <label><span data-t="device">Equipo</span> <select name="device"><option value="" data-t="any">cualquiera</option></select></label>
          <label><span data-t="from">Desde</span> <input name="from" type="datetime-local"></label>
          <label><span data-t="to">Hasta</span> <input name="to" type="datetime-local"></label>
          <button type="submit" data-t="find">Buscar</button>
        </form>
        <p id="search-status" role="status"></p>
        <table id="results"><thead><tr><th data-t="time">Hora</th><th data-t="device">Equipo</th><th data-t="kind">Tipo</th><th data-t="plate">Patente</th><th data-t="confidence">Confianza</th><th></th></tr></thead><tbody></tbody></table>
      </section>
      <section id="tab-hotlist" class="tab" hidden>
        <p id="hotlist-current"></p>
        <form id="hotlist-change" data-role="supervisor">
          <label><span data-t="entries">Entradas (CSV: plate,reason,source,added,expires, o JSON)</span>
            <textarea name="text" rows="5" spellcheck="false"></textarea></label>
          <label><span data-t="file">o un archivo</span> <input name="file" type="file" accept=".csv,.json,text/csv,application/json"></label>
          <label><span data-t="remove">Quitar patentes (separadas por coma)</span> <input name="remove" autocomplete="off"></label>
          <label class="check"><input name="replace" type="checkbox"> <span data-t="replace">Es la lista completa (reemplaza la actual)</span></label>
          <button type="submit" data-t="sign">Firmar cambio</button>
        </form>
        <p id="hotlist-status" role="status"></p>
        <table id="hotlist-devices"><thead><tr><th></th><th data-t="device">Equipo</th><th data-t="standing">Lista</th><th data-t="size">Patentes</th></tr></thead><tbody></tbody></table>
        <button id="hotlist-send" type="button" data-role="supervisor" data-t="send">Enviar a los seleccionados</button>
        <h3 data-t="changes">Cambios firmados</h3>
        <table id="hotlist-history"><thead><tr><th data-t="serial">Serie</th><th data-t="time">Hora</th><th data-t="by">Por</th><th data-t="added">Agregadas</th><th data-t="removed">Quitadas</th></tr></thead><tbody></tbody></table>
      </section>
      <section id="tab-users" class="tab" hidden>
        <table id="users"><thead><tr><th data-t="user">Usuario</th><th data-t="role">Rol</th><th></th></tr></thead><tbody></tbody></table>
        <form id="user-add">
          <label><span data-t="user">Usuario</span> <input name="name" autocomplete="off" required></label>
          <label><span data-t="role">Rol</span> <select name="role"><option value="operator" data-t="operator">operador</option><option value="supervisor" data-t="supervisor">supervisor</option><option value="admin" data-t="admin">administrador</option></select></label>
          <label><span data-t="password">Contraseña</span> <input name="password" type="password" autocomplete="new-password" required minlength="10"></label>
          <button type="submit" data-t="addUser">Agregar</button>
        </form>
        <p id="users-status" role="status"></p>
      </section>
      <section id="tab-audit" class="tab" hidden>
        <table id="audit"><thead><tr><th data-t="time">Hora</th><th data-t="user">Usuario</th><th data-t="action">Acción</th><th data-t="target">Sobre</th><th data-t="from">Desde</th></tr></thead><tbody></tbody></table>
      </section>
    </section>
  </section>
</main>
</body>
</html>
`;
